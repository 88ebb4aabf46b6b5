// The single-experiment pipeline (see experiment.hpp).
#include "dne/experiment/experiment.hpp"

#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>

#include "dne/core/build_info.hpp"
#include "dne/config/methods.hpp"
#include "dne/core/errors.hpp"
#include "dne/data/image_cache.hpp"
#include "dne/data/manifest.hpp"
#include "dne/data/phantom.hpp"
#include "dne/dne/noise_editor.hpp"
#include "dne/dne/objective.hpp"
#include "dne/fm/foundation_model.hpp"
#include "dne/metrics/metrics.hpp"
#include "dne/probe/linear_probe.hpp"
#include "dne/store/index_file.hpp"
#include "dne/store/result_file.hpp"

namespace dne::experiment {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

torch::Tensor int_tensor(const std::vector<int>& v) {
  return torch::tensor(std::vector<std::int64_t>(v.begin(), v.end()), torch::kInt64);
}

std::vector<double> to_doubles(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

std::vector<float> to_floats(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::string hostname() {
  char host[256] = "unknown";
  gethostname(host, sizeof host - 1);
  return host;
}

/// What the downstream pipeline gives for one noise: embeddings, test scores, metrics.
struct Downstream {
  torch::Tensor z_train, z_test;                   // (N, D) embeddings of x + eps
  std::vector<double> score, leak_score, frozen_score;  // per test image
  std::map<std::string, double> metrics;
  double disease_l2 = 0.0;          // the disease probe's L2 (chosen on validation with probes.l2_choices)
  std::vector<double> val_auc;      // validation disease AUC of every probes.l2_choices value
};

void say(const RunContext& ctx, const std::string& line) {
  if (ctx.log != nullptr) *ctx.log << line + "\n" << std::flush;  // one write: lines stay whole beside rank 0's progress thread
}

}  // namespace

data::Dataset load_dataset(const config::ExperimentConfig& c) {
  if (c.data.source != "manifest") return data::make_phantom(phantom_options(c));
  // `dne run` decoded the images once, before the sweep, into the run's cache.
  if (!c.data_hash.empty()) {
    const auto cache = data::image_cache_path(c.output.dir, c.data_hash, c.data.image_size, c.data.resize);
    if (std::filesystem::is_regular_file(cache))
      return data::read_image_cache(cache, c.data_hash, c.data.image_size, c.data.resize);
  }
  return data::decode_manifest(data::read_manifest(c.data.manifest, manifest_options(c)), decode_options(c, 1));
}

data::ManifestOptions manifest_options(const config::ExperimentConfig& c) {
  data::ManifestOptions m;
  m.sa_column = c.data.sa_column;
  m.limit_train = c.data.limit_train;
  m.limit_test = c.data.limit_test;
  return m;
}

std::string data_hash(const config::ExperimentConfig& c, const data::Manifest& manifest, int threads) {
  return data::data_content_hash(manifest, manifest_options(c),
                                 c.data.image_hash == "stat" ? FileFingerprint::kStat : FileFingerprint::kContent, threads);
}

data::DecodeOptions decode_options(const config::ExperimentConfig& c, int threads) {
  data::DecodeOptions d;
  d.image_size = c.data.image_size;
  d.resize = data::parse_resize_mode(c.data.resize);
  d.threads = threads;
  return d;
}

torch::Tensor tensor_view(const data::ImageSet& set) {
  return torch::from_blob(const_cast<float*>(set.pixels.data()), {set.size(), 1, set.height, set.width}, torch::kFloat32);
}

torch::Tensor to_tensor(const data::ImageSet& set) {
  auto t = torch::from_blob(const_cast<float*>(set.pixels.data()),
                            {set.size(), 1, set.height, set.width}, torch::kFloat32);
  return t.clone();
}

data::PhantomOptions phantom_options(const config::ExperimentConfig& c) {
  data::PhantomOptions p;
  p.image_size = static_cast<int>(c.data.image_size);
  p.n_train = static_cast<int>(c.data.n_train);
  p.n_test = static_cast<int>(c.data.n_test);
  p.bias = c.data.bias;
  p.prevalence = c.data.prevalence;
  p.breast_contrast = c.data.breast_contrast;
  p.marker_rate_a1 = c.data.marker_rate_a1;
  p.marker_rate_a0 = c.data.marker_rate_a0;
  p.severity_min = c.data.severity_min;
  p.severity_max = c.data.severity_max;
  p.noise_std = c.data.noise_std;
  p.seed = static_cast<std::uint64_t>(c.sweep.seed);
  return p;
}

std::string experiment_path(const std::string& dir, const std::string& id) {
  return (std::filesystem::path(dir) / store::experiment_file(id)).string();
}

double estimated_cost(const config::ExperimentConfig& c) {
  const bool rows_known = c.data.source == "manifest" && c.data_rows_train >= 0;
  const double n_train = static_cast<double>(rows_known ? c.data_rows_train : c.data.n_train);
  const double n_test = static_cast<double>(rows_known ? c.data_rows_test : c.data.n_test);
  const auto kind = config::method_info(c.dne.method).kind;
  // clean + debiased, and the norm-matched control's pass for every noise experiment
  const double embed = (kind == config::MethodKind::kReference ? 2.0 : 3.0) * (n_train + n_test);
  const double epochs = static_cast<double>(c.dne.epochs);
  const double per_image_zo = static_cast<double>(2 * c.gezo.candidates + 1);
  double edit = 0.0;
  if (kind == config::MethodKind::kWhiteBox) {
    edit = 3.0 * epochs * n_train;  // forward + backward
  } else if (kind == config::MethodKind::kZerothOrder) {
    const double local = c.dne.method == "gezo" ? static_cast<double>(c.gezo.local_epochs) : 1.0;  // GeZO's R
    edit = epochs * n_train * local * per_image_zo;
    if (c.gezo.budget > 0) edit = std::min(edit, static_cast<double>(c.gezo.budget));
  }
  return embed + edit;
}

ExperimentSummary run_experiment(const config::ExperimentConfig& c, const RunContext& ctx) {
  const auto t0 = Clock::now();
  std::map<std::string, double> timings;
  ExperimentSummary summary;
  summary.id = c.id();
  summary.path = experiment_path(c.output.dir, summary.id);
  const auto seed = static_cast<std::uint64_t>(c.sweep.seed);
  say(ctx, "[" + summary.id + "] method=" + c.dne.method + " lambda=" + std::to_string(c.dne.lambda) +
               " seed=" + std::to_string(c.sweep.seed));

  // 1. Data: (N, 1, H, W) images, labels, sensitive attribute.
  auto t = Clock::now();
  data::Dataset dataset = load_dataset(c);
  data::validate(dataset.train, "train split");
  data::validate(dataset.test, "test split");
  // The label-poisoning attack hits the training data as delivered (before the validation carve).
  const auto poisoned = data::poison_labels(dataset.train, c.data.poison_rate, static_cast<int>(c.data.poison_group), seed);
  data::carve_validation(dataset, c.data.val_fraction, seed);  // before anything is fitted
  const bool has_val = dataset.val.size() > 0;
  // Views of the decoded pixels (one copy of the images per rank; `dataset` lives until the end).
  const auto x_train = tensor_view(dataset.train), x_test = tensor_view(dataset.test);
  const auto x_val = has_val ? tensor_view(dataset.val) : torch::Tensor();
  const auto y_train = int_tensor(dataset.train.label), a_train = int_tensor(dataset.train.sa);
  const auto a_test = int_tensor(dataset.test.sa);
  timings["data_s"] = seconds_since(t);

  // 2. Foundation model and clean embeddings (N, D).
  t = Clock::now();
  auto model = fm::make_model(c.fm, dataset.train.height, seed);
  const auto fm_provenance = model->provenance();
  if (!c.fm_hash.empty() && (fm_provenance.count("hash") == 0 || fm_provenance.at("hash") != c.fm_hash))
    throw ModelError((c.fm.kind == "torchscript" ? c.fm.torchscript : c.fm.weights) +
                     ": the FM file changed since the run started (content hash " +
                     (fm_provenance.count("hash") ? fm_provenance.at("hash") : std::string("?")) + ", expected " +
                     c.fm_hash + ")");
  const auto z_train = fm::embed_all(*model, x_train, c.fm.batch_size);
  const auto z_test = fm::embed_all(*model, x_test, c.fm.batch_size);
  timings["embed_clean_s"] = seconds_since(t);

  // 3. Frozen SA probe g on clean train embeddings.
  t = Clock::now();
  const auto g = probe::LinearProbe::fit(z_train, a_train, c.probes);
  const auto g_clean_test = to_doubles(g.probability(z_test));
  timings["sa_probe_s"] = seconds_since(t);

  // 4. Noise editor. Black-box editors see only the API; the group shares their queries.
  t = Clock::now();
  std::unique_ptr<comm::Communicator> alone;
  comm::Communicator* group = ctx.group;
  if (group == nullptr) {
    alone = comm::make_self_communicator();
    group = alone.get();
  }
  fm::ApiOptions api_options;
  api_options.budget_images = c.gezo.budget;  // per-rank guard; the editor enforces the group total
  api_options.max_batch = c.api.max_batch;
  api_options.latency_ms = c.api.latency_ms;
  api_options.round_decimals = c.api.round_decimals;
  fm::EmbeddingApi api(model, api_options);
  editing::ModelAccess access{*model, api, *group};
  editing::EditProblem problem{x_train, a_train.to(torch::kFloat32), &g, c.dne, seed, c.gezo, c.comm, c.probes};
  editing::EditResult edit = editing::find_editor(c.dne.method)(problem, access);
  timings["edit_s"] = seconds_since(t);
  double group_api_images = static_cast<double>(api.images());
  group->allreduce_sum(&group_api_images, 1);
  if (group_api_images != static_cast<double>(c.dne.method == "whitebox" ? 0 : edit.queries))
    throw Error("internal: the group's API calls (" + std::to_string(group_api_images) +
                " images) disagree with the editor's count (" + std::to_string(edit.queries) + ")");
  summary.queries = edit.queries;
  summary.status = edit.status;

  // 4b. dne.keep = "best_val": of the epoch-end noises (and the last one, if the editor stopped
  // early), keep the one with the lowest DNE loss on the validation split under the frozen g.
  std::vector<double> val_losses;
  std::int64_t kept_checkpoint = -1;
  auto kept_noise = edit.noise.detach();
  if (c.dne.keep == "best_val" && config::learns_noise(c.dne.method)) {
    auto candidates = edit.checkpoints;
    if (candidates.empty() || !torch::equal(candidates.back(), kept_noise)) candidates.push_back(kept_noise);
    torch::NoGradGuard no_grad;
    const auto a_val = int_tensor(dataset.val.sa).to(torch::kFloat32);
    for (std::size_t k = 0; k < candidates.size(); ++k) {
      const auto z = fm::embed_all(*model, editing::add_noise(x_val, candidates[k], c.dne), c.fm.batch_size);
      val_losses.push_back(editing::dne_objective(g.logits(z), a_val, candidates[k], c.dne).loss.item<double>());
      if (kept_checkpoint < 0 || val_losses.back() < val_losses[static_cast<std::size_t>(kept_checkpoint)])
        kept_checkpoint = static_cast<std::int64_t>(k);
    }
    kept_noise = candidates[static_cast<std::size_t>(kept_checkpoint)];
  }

  // 5-6. Debiased embeddings, disease probe, fresh SA (leakage) probe, metrics.
  t = Clock::now();
  const auto& label = dataset.test.label;
  const auto& sa = dataset.test.sa;
  const auto noise = kept_noise;  // (H, W)
  // Where the phantom draws the SA cues and the effusion (phantom data only): where the noise goes.
  std::optional<data::PhantomRegions> regions;
  if (c.data.source == "phantom") regions = data::phantom_regions(phantom_options(c));
  const auto downstream = [&](const torch::Tensor& eps) {
    Downstream d;
    d.z_train = fm::embed_all(*model, editing::add_noise(x_train, eps, c.dne), c.fm.batch_size);
    d.z_test = fm::embed_all(*model, editing::add_noise(x_test, eps, c.dne), c.fm.batch_size);
    // The disease probe's L2: probes.l2, or the probes.l2_choices value with the best validation AUC.
    auto disease_options = c.probes;
    if (!c.probes.l2_choices.empty()) {
      const auto z_val = fm::embed_all(*model, editing::add_noise(x_val, eps, c.dne), c.fm.batch_size);
      double best = -1.0;
      for (const double l2 : config::number_list(c.probes.l2_choices, "probes.l2_choices")) {
        auto o = c.probes;
        o.l2 = l2;
        d.val_auc.push_back(metrics::roc_auc(to_doubles(probe::LinearProbe::fit(d.z_train, y_train, o).probability(z_val)),
                                             dataset.val.label));
        if (d.val_auc.back() > best) {  // ties keep the earlier (listed first) value
          best = d.val_auc.back();
          disease_options.l2 = l2;
        }
      }
    }
    d.disease_l2 = disease_options.l2;
    const auto disease = probe::LinearProbe::fit(d.z_train, y_train, disease_options);
    d.score = to_doubles(disease.probability(d.z_test));
    const auto leak = probe::LinearProbe::fit(d.z_train, a_train, c.probes);
    d.leak_score = to_doubles(leak.probability(d.z_test));
    d.frozen_score = to_doubles(g.probability(d.z_test));
    auto& m = d.metrics;
    m = metrics::classification_metrics(d.score, label, sa);
    m["frozen_sa_accuracy"] = metrics::accuracy(d.frozen_score, sa);
    m["frozen_sa_auc"] = metrics::roc_auc(d.frozen_score, sa);
    m["sa_leakage_auc"] = metrics::roc_auc(d.leak_score, sa);
    m["sa_leakage_accuracy"] = metrics::accuracy(d.leak_score, sa);
    m["sa_probe_clean_accuracy"] = metrics::accuracy(g_clean_test, sa);
    m["sa_probe_clean_auc"] = metrics::roc_auc(g_clean_test, sa);
    m["noise_l2"] = eps.pow(2).sum().sqrt().item<double>();
    m["noise_linf"] = eps.abs().max().item<double>();
    if (regions)
      for (const auto& [name, value] : metrics::noise_energy_by_region(to_floats(eps), regions->sa_region, regions->disease_region))
        m[name] = value;
    return d;
  };
  const Downstream result = downstream(noise);
  const auto& zd_train = result.z_train;
  const auto& zd_test = result.z_test;
  const auto& score = result.score;
  const auto& leak_score = result.leak_score;
  const auto& frozen_score = result.frozen_score;
  const auto& m = result.metrics;
  summary.metrics = m;
  timings["downstream_s"] = seconds_since(t);

  // 6b. The norm-matched random control of every noise experiment: random noise with the learned
  // noise's L2 norm (inside its L-inf budget), through the same downstream pipeline.
  Downstream control;
  torch::Tensor control_noise;
  if (c.dne.method != "none") {
    t = Clock::now();
    control_noise = editing::norm_matched_noise(noise, c.dne, seed);
    control = downstream(control_noise);
    summary.control_metrics = control.metrics;
    timings["control_s"] = seconds_since(t);
  }

  // 7. Result file, written to a temporary name and renamed, by the group's rank 0 only.
  summary.wall_s = seconds_since(t0);
  if (group->rank() != 0) return summary;
  t = Clock::now();
  std::filesystem::create_directories(std::filesystem::path(summary.path).parent_path());
  store::ResultWriter w(summary.path);
  w.attribute("/", "id", summary.id);
  w.attribute("/", "config", c.resolved_text());
  w.attribute("/", "status", summary.status);
  w.attribute("/", "seed", static_cast<std::int64_t>(c.sweep.seed));
  w.attribute("/", "method", c.dne.method);
  w.attribute("/", "git_commit", std::string(build_git_commit()));
  w.attribute("/", "created", store::now_iso8601());
  w.attribute("/", "schema_version", static_cast<std::int64_t>(store::kSchemaVersion));
  w.attribute("/provenance", "hostname", hostname());
  w.attribute("/provenance", "world_size", static_cast<std::int64_t>(ctx.world_size));
  w.attribute("/provenance", "group_size", static_cast<std::int64_t>(group->size()));
  w.attribute("/provenance", "communicator", group->name());
  w.attribute("/provenance", "bytes_communicated", static_cast<std::int64_t>(group->bytes_communicated()));
  w.attribute("/provenance", "torch_threads", static_cast<std::int64_t>(torch::get_num_threads()));
  w.attribute("/provenance", "torch_version", std::string(TORCH_VERSION));
  w.attribute("/provenance", "hdf5_version", store::hdf5_version());
  w.attribute("/provenance", "mpi_library", ctx.mpi_library);
  w.attribute("/provenance", "compiler", std::string(build_compiler()));
  w.attribute("/provenance", "fm", model->describe());
  if (c.data.source == "manifest") {
    w.attribute("/provenance", "data_manifest", std::filesystem::absolute(c.data.manifest).string());
    w.attribute("/provenance", "data_hash", c.data_hash);  // the manifest's bytes and every image in use
  }
  for (const auto& [key, value] : fm_provenance) w.attribute("/provenance", "fm_" + key, value);
  w.attribute("/provenance", "queries", summary.queries);
  const auto h = static_cast<std::uint64_t>(noise.size(0)), wd = static_cast<std::uint64_t>(noise.size(1));
  w.dataset("/noise", to_floats(noise), {h, wd});
  const auto n_test = static_cast<std::uint64_t>(label.size());
  w.dataset("/test/score", std::vector<double>(score), {n_test});
  w.dataset("/test/label", std::vector<std::int32_t>(label.begin(), label.end()), {n_test});
  w.dataset("/test/sa", std::vector<std::int32_t>(sa.begin(), sa.end()), {n_test});
  w.dataset("/test/frozen_sa_score", std::vector<double>(frozen_score), {n_test});
  w.dataset("/test/leakage_sa_score", std::vector<double>(leak_score), {n_test});
  {
    // One clean test image per (sa, label) cell, in order a0y0, a0y1, a1y0, a1y1, for figures.
    const auto& test = dataset.test;
    const std::size_t pixels = static_cast<std::size_t>(test.height) * static_cast<std::size_t>(test.width);
    std::vector<float> images;
    std::vector<std::int32_t> ex_sa, ex_label;
    for (int a = 0; a <= 1; ++a)
      for (int y = 0; y <= 1; ++y)
        for (std::size_t i = 0; i < label.size(); ++i)
          if (sa[i] == a && label[i] == y) {
            images.insert(images.end(), test.pixels.begin() + static_cast<std::ptrdiff_t>(i * pixels),
                          test.pixels.begin() + static_cast<std::ptrdiff_t>((i + 1) * pixels));
            ex_sa.push_back(a);
            ex_label.push_back(y);
            break;
          }
    const auto k = static_cast<std::uint64_t>(ex_sa.size());
    w.dataset("/examples/images", images, {k, static_cast<std::uint64_t>(test.height), static_cast<std::uint64_t>(test.width)});
    w.dataset("/examples/sa", ex_sa, {k});
    w.dataset("/examples/label", ex_label, {k});
  }
  for (const auto& [name, value] : m) w.attribute("/metrics", name, value);
  if (regions) {
    const std::vector<std::uint64_t> shape{h, wd};
    w.dataset("/regions/sa", std::vector<std::int32_t>(regions->sa_region.begin(), regions->sa_region.end()), shape);
    w.dataset("/regions/disease", std::vector<std::int32_t>(regions->disease_region.begin(), regions->disease_region.end()), shape);
    w.dataset("/regions/breast_map", std::vector<float>(regions->breast), shape);
    w.dataset("/regions/marker_map", std::vector<float>(regions->marker), shape);
    w.dataset("/regions/effusion_map", std::vector<float>(regions->effusion), shape);
  }
  if (control_noise.defined()) {
    w.dataset("/control/noise", to_floats(control_noise), {h, wd});
    w.dataset("/control/test/score", std::vector<double>(control.score), {n_test});
    w.dataset("/control/test/leakage_sa_score", std::vector<double>(control.leak_score), {n_test});
    for (const auto& [name, value] : control.metrics) w.attribute("/control/metrics", name, value);
  }
  // What was chosen on validation, and from what (docs/results-format.md /selection).
  w.attribute("/selection", "val_size", static_cast<std::int64_t>(dataset.val.size()));
  w.attribute("/poison", "rate", c.data.poison_rate);
  w.attribute("/poison", "group", c.data.poison_group);
  w.dataset("/poison/index", poisoned, {static_cast<std::uint64_t>(poisoned.size())});  // in the training split as loaded
  w.attribute("/selection", "keep", c.dne.keep);
  w.attribute("/selection", "disease_probe_l2", result.disease_l2);
  if (!result.val_auc.empty()) w.dataset("/selection/val_auc", std::vector<double>(result.val_auc), {result.val_auc.size()});
  if (control_noise.defined()) w.attribute("/selection", "control_disease_probe_l2", control.disease_l2);
  if (kept_checkpoint >= 0) {
    w.attribute("/selection", "noise_checkpoint", kept_checkpoint);
    w.dataset("/selection/val_loss", std::vector<double>(val_losses), {val_losses.size()});
  }
  for (const auto& [name, column] : edit.trace.columns())
    w.dataset("/trace/" + name, column, {column.size()});
  if (c.output.save_embeddings) {
    const auto d = static_cast<std::uint64_t>(zd_train.size(1));
    w.dataset("/embeddings/train", to_floats(zd_train), {static_cast<std::uint64_t>(zd_train.size(0)), d});
    w.dataset("/embeddings/test", to_floats(zd_test), {n_test, d});
  }
  timings["write_s"] = seconds_since(t);
  summary.wall_s = seconds_since(t0);
  timings["total_s"] = summary.wall_s;
  for (const auto& [name, value] : timings) w.attribute("/timings", name, value);
  w.commit();

  say(ctx, "[" + summary.id + "] done in " + std::to_string(summary.wall_s) + " s: accuracy=" +
               std::to_string(m.at("accuracy")) + " eo_p=" + std::to_string(m.at("eo_p")) +
               " frozen_sa_accuracy=" + std::to_string(m.at("frozen_sa_accuracy")) +
               " sa_leakage_auc=" + std::to_string(m.at("sa_leakage_auc")));
  return summary;
}

}  // namespace dne::experiment
