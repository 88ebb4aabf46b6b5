// The result file's layout (see result_layout.hpp and docs/results-format.md).
#include "dne/experiment/result_layout.hpp"

#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "dne/comm/device_choice.hpp"
#include "dne/core/build_info.hpp"
#include "dne/core/host.hpp"
#include "dne/data/embedding_file.hpp"
#include "dne/experiment/stages.hpp"
#include "dne/fm/remote_model.hpp"
#include "dne/store/result_file.hpp"

namespace dne::experiment {
namespace {

using Clock = std::chrono::steady_clock;

void write_root_and_provenance(store::H5Writer& w, const ExperimentState& s, const ExperimentSummary& summary) {
  const auto& c = s.c;
  const auto& ctx = s.ctx;
  w.attribute("/", "id", summary.id);
  w.attribute("/", "config", config::resolved_text(c, ctx.run));
  w.attribute("/", "status", summary.status);
  w.attribute("/", "seed", static_cast<std::int64_t>(c.sweep.seed));
  w.attribute("/", "method", c.dne.method);
  w.attribute("/", "git_commit", std::string(build_git_commit()));
  w.attribute("/", "created", store::now_iso8601());
  w.attribute("/", "schema_version", static_cast<std::int64_t>(store::kSchemaVersion));
  w.attribute("/provenance", "hostname", host_name());
  w.attribute("/provenance", "world_size", static_cast<std::int64_t>(ctx.world_size));
  w.attribute("/provenance", "group_size", static_cast<std::int64_t>(s.group->size()));
  w.attribute("/provenance", "communicator", s.group->name());
  w.attribute("/provenance", "bytes_communicated", static_cast<std::int64_t>(s.group->bytes_communicated()));
  w.attribute("/provenance", "torch_threads", static_cast<std::int64_t>(torch::get_num_threads()));
  w.attribute("/provenance", "device", ctx.device.description());
  w.attribute("/provenance", "precision", c.run.precision);
  w.attribute("/provenance", "libtorch_cuda", comm::libtorch_cuda_version());
  w.attribute("/provenance", "torch_version", std::string(TORCH_VERSION));
  w.attribute("/provenance", "hdf5_version", store::hdf5_version());
  w.attribute("/provenance", "mpi_library", ctx.mpi_library);
  w.attribute("/provenance", "compiler", std::string(build_compiler()));
  w.attribute("/provenance", "fm", s.model ? s.model->describe() : std::string("none: precomputed embeddings"));
  if (c.data.source == "manifest") {
    w.attribute("/provenance", "data_manifest", std::filesystem::absolute(c.data.manifest).string());
    w.attribute("/provenance", "data_hash", c.data_hash);  // the manifest's bytes and every image in use
  } else if (c.data.source == "embeddings") {
    w.attribute("/provenance", "data_embeddings", std::filesystem::absolute(c.data.embeddings).string());
    w.attribute("/provenance", "data_hash", c.data_hash);  // the file's bytes and the group read
  }
  for (const auto& [key, value] : s.fm_provenance) w.attribute("/provenance", "fm_" + key, value);
}

/// A remote FM's endpoint, model and traffic (never the token: the client keeps it in its
/// Authorization header only).
void write_remote_provenance(store::H5Writer& w, const ExperimentState& s) {
  const auto* remote = dynamic_cast<const fm::RemoteModel*>(s.model.get());
  if (remote == nullptr) return;
  const auto& meta = remote->metadata();
  w.attribute("/provenance", "api_endpoint", remote->endpoint());
  w.attribute("/provenance", "api_model", meta.name);
  w.attribute("/provenance", "api_model_version", meta.versions.empty() ? std::string() : meta.versions.front());
  w.attribute("/provenance", "api_platform", meta.platform);
  w.attribute("/provenance", "api_encoding", remote->encoding());
  w.attribute("/provenance", "api_concurrency", static_cast<std::int64_t>(s.c.api.concurrency));
  const char* totals[] = {"api_requests", "api_retries", "api_bytes_sent", "api_bytes_received"};
  for (std::size_t i = 0; i < s.traffic.size(); ++i) w.attribute("/provenance", totals[i], static_cast<std::int64_t>(s.traffic[i]));
  auto latency = s.client_stats.latency_ms;  // this rank's successful requests
  std::sort(latency.begin(), latency.end());
  for (const auto& [name, q] : {std::pair<const char*, double>{"api_latency_p50_ms", 0.5}, {"api_latency_p90_ms", 0.9}, {"api_latency_p99_ms", 0.99}})
    w.attribute("/provenance", name,
                latency.empty() ? std::nan("")
                                : latency[static_cast<std::size_t>(std::ceil(q * static_cast<double>(latency.size()))) - 1]);
}

/// /test (scores and labels per test row) and, on images, /examples: one clean test image per
/// (sa, label) cell, in order a0y0, a0y1, a1y0, a1y1, for figures.
void write_test_rows(store::H5Writer& w, const ExperimentState& s) {
  const auto& result = s.outcome.result;
  const auto& test = s.dataset.test;
  const auto& label = test.label;
  const auto& sa = test.sa;
  const auto n_test = static_cast<std::uint64_t>(label.size());
  w.dataset("/test/score", std::vector<double>(result.score), {n_test});
  w.dataset("/test/label", std::vector<std::int32_t>(label.begin(), label.end()), {n_test});
  w.dataset("/test/sa", std::vector<std::int32_t>(sa.begin(), sa.end()), {n_test});
  if (!test.age.empty()) w.dataset("/test/age", test.age, {n_test});
  if (!result.frozen_score.empty()) w.dataset("/test/frozen_sa_score", std::vector<double>(result.frozen_score), {n_test});
  w.dataset("/test/leakage_sa_score", std::vector<double>(result.leak_score), {n_test});
  if (!s.images) return;
  std::vector<float> example_pixels;
  std::vector<std::int32_t> ex_sa, ex_label;
  for (int a = 0; a <= 1; ++a)
    for (int y = 0; y <= 1; ++y)
      for (std::size_t i = 0; i < label.size(); ++i)
        if (sa[i] == a && label[i] == y) {
          const auto image = to_floats(s.x_test.slice(static_cast<std::int64_t>(i), static_cast<std::int64_t>(i) + 1));  // (1, 1, H, W)
          example_pixels.insert(example_pixels.end(), image.begin(), image.end());
          ex_sa.push_back(a);
          ex_label.push_back(y);
          break;
        }
  const auto k = static_cast<std::uint64_t>(ex_sa.size());
  w.dataset("/examples/images", example_pixels, {k, static_cast<std::uint64_t>(test.height), static_cast<std::uint64_t>(test.width)});
  w.dataset("/examples/sa", ex_sa, {k});
  w.dataset("/examples/label", ex_label, {k});
}

/// /noise, the phantom's /regions, and the control: /control/noise, its test scores and metrics.
void write_noise_and_control(store::H5Writer& w, const ExperimentState& s) {
  const auto& o = s.outcome;
  if (o.noise.defined()) {
    const auto h = static_cast<std::uint64_t>(o.noise.size(0)), wd = static_cast<std::uint64_t>(o.noise.size(1));
    w.dataset("/noise", to_floats(o.noise), {h, wd});
    if (const auto& regions = o.regions) {
      const std::vector<std::uint64_t> shape{h, wd};
      w.dataset("/regions/sa", std::vector<std::int32_t>(regions->sa_region.begin(), regions->sa_region.end()), shape);
      w.dataset("/regions/disease", std::vector<std::int32_t>(regions->disease_region.begin(), regions->disease_region.end()), shape);
      w.dataset("/regions/breast_map", std::vector<float>(regions->breast), shape);
      w.dataset("/regions/marker_map", std::vector<float>(regions->marker), shape);
      w.dataset("/regions/effusion_map", std::vector<float>(regions->effusion), shape);
    }
    if (o.control_noise.defined()) w.dataset("/control/noise", to_floats(o.control_noise), {h, wd});
  }
  if (o.control.metrics.empty()) return;
  const auto n_test = static_cast<std::uint64_t>(s.dataset.test.label.size());
  w.attribute("/control", "kind", s.method_info.kind == config::MethodKind::kEmbedding ? std::string("vae without the adversary")
                                                                                  : std::string("norm-matched random noise"));
  w.dataset("/control/test/score", std::vector<double>(o.control.score), {n_test});
  w.dataset("/control/test/leakage_sa_score", std::vector<double>(o.control.leak_score), {n_test});
  for (const auto& [name, value] : o.control.metrics) w.attribute("/control/metrics", name, value);
}

/// What was chosen on validation, and from what (/selection), the poisoning (/poison), and the
/// curves (/trace per step or epoch, /progress on validation).
void write_selection_and_curves(store::H5Writer& w, const ExperimentState& s) {
  const auto& c = s.c;
  const auto& o = s.outcome;
  w.attribute("/selection", "val_size", static_cast<std::int64_t>(s.dataset.val.size()));
  w.attribute("/poison", "rate", c.data.poison_rate);
  w.attribute("/poison", "group", c.data.poison_group);
  w.dataset("/poison/index", s.poisoned, {static_cast<std::uint64_t>(s.poisoned.size())});  // in the training split as loaded
  w.attribute("/selection", "keep", c.dne.keep);
  w.attribute("/selection", "disease_probe_l2", o.result.disease_l2);
  if (!o.result.val_auc.empty()) w.dataset("/selection/val_auc", std::vector<double>(o.result.val_auc), {o.result.val_auc.size()});
  if (!o.control.metrics.empty()) w.attribute("/selection", "control_disease_probe_l2", o.control.disease_l2);
  if (o.kept_checkpoint >= 0) {
    w.attribute("/selection", "noise_checkpoint", o.kept_checkpoint);
    w.dataset("/selection/val_loss", std::vector<double>(o.val_losses), {o.val_losses.size()});
  }
  for (const auto& [name, column] : o.trace.columns()) w.dataset("/trace/" + name, column, {column.size()});
  for (const auto& [name, column] : o.progress.columns()) w.dataset("/progress/" + name, column, {column.size()});
  if (o.progress.steps() > 0) {
    w.attribute("/progress", "split", std::string("val"));
    w.attribute("/progress", "eval_every", c.dne.eval_every);
    for (const auto& [name, value] : o.control_on_validation) w.attribute("/progress", name, value);
  }
}

/// output.save_embeddings: the method's embeddings with their rows' labels, in the layout
/// data.source = "embeddings" reads.
void write_embeddings(store::H5Writer& w, const ExperimentState& s) {
  const auto rows = [](const torch::Tensor& z, const data::ImageSet& like) {
    data::ImageSet out = like;
    out.origin.clear();  // the rows are embeddings in memory now, wherever the images were
    out.origin_split = -1;
    out.height = 1;
    out.width = z.size(1);
    out.pixels = to_floats(z);
    return out;
  };
  const auto& z = s.outcome.result.z;
  data::write_embedding_split(w, "/embeddings/train", rows(z.train, s.dataset.train));
  if (s.has_val && z.val.defined()) data::write_embedding_split(w, "/embeddings/val", rows(z.val, s.dataset.val));
  data::write_embedding_split(w, "/embeddings/test", rows(z.test, s.dataset.test));
}

}  // namespace

void write_result_file(const ExperimentState& s, ExperimentSummary& summary, Clock::time_point start) {
  const auto t = Clock::now();
  std::filesystem::create_directories(std::filesystem::path(summary.path).parent_path());
  store::H5Writer w(summary.path);
  write_root_and_provenance(w, s, summary);
  write_remote_provenance(w, s);
  w.attribute("/provenance", "queries", summary.queries);
  write_test_rows(w, s);
  for (const auto& [name, value] : summary.metrics) w.attribute("/metrics", name, value);
  write_noise_and_control(w, s);
  write_selection_and_curves(w, s);
  if (s.ctx.run.save_embeddings) write_embeddings(w, s);
  w.flush();  // the data on disk: write_s and total_s cover it (only the timings, close and rename follow)
  auto timings = s.timings;
  timings["write_s"] = seconds_since(t);
  summary.wall_s = seconds_since(start);
  timings["total_s"] = summary.wall_s;
  for (const auto& [name, value] : timings) w.attribute("/timings", name, value);
  w.commit();
}

}  // namespace dne::experiment
