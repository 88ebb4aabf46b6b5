// The single-experiment pipeline as a list of named stages (see experiment.hpp, stages.hpp).
#include "dne/experiment/experiment.hpp"

#include <torch/torch.h>

#include <chrono>
#include <string>

#include "dne/comm/group_agreement.hpp"
#include "dne/comm/group_embedding.hpp"
#include "dne/config/methods.hpp"
#include "dne/core/errors.hpp"
#include "dne/editing/objective.hpp"
#include "dne/experiment/method_registry.hpp"
#include "dne/experiment/result_layout.hpp"
#include "dne/experiment/stages.hpp"
#include "dne/fm/device_model.hpp"
#include "dne/fm/remote_model.hpp"

namespace dne::experiment {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

ExperimentState::ExperimentState(const config::ExperimentConfig& config, const ExperimentContext& context)
    : c(config), ctx(context), method_info(config::method_info(config.dne.method)),
      seed(static_cast<std::uint64_t>(config.sweep.seed)), images(config.data.source != "embeddings") {
  group = ctx.group;
  if (group == nullptr) {
    alone = comm::make_self_communicator();
    group = alone.get();
  }
}

torch::Tensor ExperimentState::embed(const editing::ImageRows& x, const torch::Tensor& eps) const {
  // A split is embedded in chunks of fm.batch_size dealt over the group (embed_over_group): the
  // same chunks, so the same bits, as on one rank, and a remote request that fails on one rank
  // stops the whole group.
  auto z = comm::embed_over_group(
      x.size(), c.fm.batch_size, model->embed_dim(), model->parallelism(),
      [&](std::int64_t begin, std::int64_t end) {
        const auto batch = x.slice(begin, end);
        return eps.defined() ? editing::add_noise(batch, eps, c.dne) : batch;
      },
      [&](const std::vector<torch::Tensor>& batches) { return model->embed_each(batches); }, *group);
  if (!torch::isfinite(z).all().item<bool>())
    throw ModelError("foundation model returned non-finite embeddings (NaN/Inf in input or weights)");
  return z;
}

void ExperimentState::say(const std::string& line) const {
  if (ctx.log != nullptr) *ctx.log << line + "\n" << std::flush;  // one write: lines stay whole beside rank 0's progress thread
}

void load_data(ExperimentState& s) {
  const auto t = Clock::now();
  const auto& c = s.c;
  s.dataset = load_dataset_streamed(c, s.ctx.run.output_dir, s.cache);
  auto& dataset = s.dataset;
  data::validate(dataset.train, "train split");
  data::validate(dataset.test, "test split");
  // The label-poisoning attack hits the training data as delivered (before the validation carve).
  s.poisoned = data::poison_labels(dataset.train, c.data.poison_rate, static_cast<int>(c.data.poison_group), s.seed);
  data::carve_validation(dataset, c.data.val_fraction, s.seed);  // before anything is fitted
  // data.resample: what this seed draws of the (rest of the) training split; val and test stay.
  data::resample_training(dataset, c.data.resample, c.data.resample_fraction, s.seed);
  s.has_val = dataset.val.size() > 0;
  // The images as float32 batches on demand: views of the pixels in memory (the phantom, an
  // embeddings file's rows; `dataset` lives until the end), or rows of the mapped cache, one copy
  // per node: no rank holds a manifest's images.
  s.x_train = editing::ImageRows::of(dataset.train, s.cache);
  s.x_test = editing::ImageRows::of(dataset.test, s.cache);
  s.x_val = s.has_val ? editing::ImageRows::of(dataset.val, s.cache) : editing::ImageRows();
  s.y_train = int_tensor(dataset.train.label);
  s.a_train = int_tensor(dataset.train.sa);
  s.timings["data_s"] = seconds_since(t);
}

void embed_clean(ExperimentState& s) {
  const auto t = Clock::now();
  const auto& c = s.c;
  if (!s.images) {  // an embeddings file: its rows are the clean embeddings
    const auto rows = [](const editing::ImageRows& x) {
      return x.defined() ? x.tensor().reshape({x.size(), x.width()}) : torch::Tensor();
    };
    s.clean = Splits{rows(s.x_train), rows(s.x_val), rows(s.x_test)};
    s.timings["embed_clean_s"] = seconds_since(t);
    return;
  }
  std::exception_ptr failure;  // connecting to a remote FM can fail on one rank only
  try {
    s.model = fm::make_embedding_model(c.fm, c.api, s.dataset.train.height, s.seed);
    // run.device = "cuda": an in-process FM's forwards run on this rank's GPU at run.precision.
    // The editor then works there too (EditProblem::device); a remote FM's editor stays on the host.
    if (auto in_process = std::dynamic_pointer_cast<fm::DifferentiableModel>(s.model); in_process && s.ctx.device.cuda()) {
      s.edit_device = s.ctx.device.torch_device();
      s.model = fm::on_device(in_process, s.edit_device, c.run.precision);
    }
  } catch (const Error&) {
    failure = std::current_exception();
  }
  comm::agree_on_failure(*s.group, failure);
  s.fm_provenance = s.model->provenance();
  if (!c.fm_hash.empty() && (s.fm_provenance.count("hash") == 0 || s.fm_provenance.at("hash") != c.fm_hash))
    throw ModelError((c.fm.kind == "torchscript" ? c.fm.torchscript : c.fm.weights) +
                     ": the FM file changed since the run started (content hash " +
                     (s.fm_provenance.count("hash") ? s.fm_provenance.at("hash") : std::string("?")) + ", expected " +
                     c.fm_hash + ")");
  s.clean.train = s.embed(s.x_train, {});
  s.clean.test = s.embed(s.x_test, {});
  if (s.has_val && s.method_info.kind == config::MethodKind::kEmbedding) s.clean.val = s.embed(s.x_val, {});
  s.timings["embed_clean_s"] = seconds_since(t);
}

void fit_frozen_probe(ExperimentState& s) {
  const auto t = Clock::now();
  s.g = probe::LinearProbe::fit(s.clean.train, s.a_train, s.c.probes);
  s.eval.emplace(EvalContext{s.dataset, s.y_train, s.a_train, &*s.g, to_doubles(s.g->probability(s.clean.test)), s.c.probes});
  s.timings["sa_probe_s"] = seconds_since(t);
}

void gather_traffic(ExperimentState& s) {
  const auto* remote = dynamic_cast<const fm::RemoteModel*>(s.model.get());
  if (remote == nullptr) return;
  s.client_stats = remote->stats();
  s.traffic = {static_cast<double>(s.client_stats.requests), static_cast<double>(s.client_stats.retries),
               static_cast<double>(s.client_stats.bytes_sent), static_cast<double>(s.client_stats.bytes_received)};
  s.group->allreduce_sum(s.traffic.data(), s.traffic.size());
}

ExperimentSummary run_experiment(const config::ExperimentConfig& c, const ExperimentContext& ctx) {
  const auto t0 = Clock::now();
  ExperimentState s(c, ctx);
  ExperimentSummary summary;
  summary.id = c.id();
  summary.path = experiment_path(ctx.run.output_dir, summary.id);
  s.say("[" + summary.id + "] method=" + c.dne.method +
        (config::learns_noise(c.dne.method) ? " lambda=" + std::to_string(c.dne.lambda) : "") +
        " seed=" + std::to_string(c.sweep.seed));

  load_data(s);         // 1. (N, 1, H, W) images (or (N, D) embedding rows), labels, sensitive attribute
  embed_clean(s);       // 2. the FM and the clean embeddings (N, D)
  fit_frozen_probe(s);  // 3. g on the clean training embeddings
  // Cancellation points (SIGTERM / SIGINT, core/stop_signal.hpp) are every group agreement
  // (embedding chunks, editor steps) and these phase boundaries; once the control's embeddings
  // are in, the experiment finishes and writes its file.
  comm::stop_point(*s.group, "before the method ran");
  method(c.dne.method).run(s);  // 4-6. the method and its control, each through evaluate()
  gather_traffic(s);            // collective on every rank of the group

  const auto& outcome = s.outcome;
  summary.status = outcome.status;
  summary.queries = outcome.queries;
  summary.metrics = outcome.result.metrics;
  summary.control_metrics = outcome.control.metrics;
  summary.wall_s = seconds_since(t0);
  if (s.group->rank() != 0) return summary;
  write_result_file(s, summary, t0);  // 7. the group's rank 0 only (result_layout.hpp)
  const auto& m = summary.metrics;
  s.say("[" + summary.id + "] done in " + std::to_string(summary.wall_s) + " s: accuracy=" +
        std::to_string(m.at("accuracy")) + " eo_p=" + std::to_string(m.at("eo_p")) +
        (m.count("frozen_sa_accuracy") ? " frozen_sa_accuracy=" + std::to_string(m.at("frozen_sa_accuracy")) : "") +
        " sa_leakage_auc=" + std::to_string(m.at("sa_leakage_auc")));
  return summary;
}

}  // namespace dne::experiment
