// The single-experiment pipeline (see experiment.hpp).
#include "dne/experiment/experiment.hpp"

#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>

#include "dne/core/build_info.hpp"
#include "dne/config/methods.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/host.hpp"
#include "dne/core/hash.hpp"
#include "dne/data/embedding_file.hpp"
#include "dne/data/image_cache.hpp"
#include "dne/data/manifest.hpp"
#include "dne/data/phantom.hpp"
#include "dne/dne/noise_basis.hpp"
#include "dne/dne/noise_editor.hpp"
#include "dne/dne/objective.hpp"
#include "dne/fm/foundation_model.hpp"
#include "dne/fm/device_model.hpp"
#include "dne/fm/remote_model.hpp"
#include "dne/metrics/metrics.hpp"
#include "dne/probe/linear_probe.hpp"
#include "dne/store/index_file.hpp"
#include "dne/store/result_file.hpp"
#include "dne/vae/adversarial_vae.hpp"

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

/// The (N, D) embeddings of the three splits that a method hands to the probes (val undefined
/// without a validation split).
struct Splits {
  torch::Tensor train, val, test;
};

/// What the probes of every method are fitted and scored with, besides the embeddings.
struct EvalContext {
  const data::Dataset& dataset;
  torch::Tensor y_train, a_train;              // (N,) int64
  const probe::LinearProbe* frozen = nullptr;  // g on the clean embeddings; nullptr when the method's
                                               // embeddings are not in g's space (the VAE's latent code)
  std::vector<double> g_clean_test;            // g's scores on the clean test embeddings
  config::ProbeOptions probes;
};

/// What the downstream pipeline gives for one set of embeddings: test scores and metrics.
struct Downstream {
  Splits z;
  std::vector<double> score, leak_score, frozen_score;  // per test row (frozen: empty without g)
  std::map<std::string, double> metrics;
  double disease_l2 = 0.0;          // the disease probe's L2 (chosen on validation with probes.l2_choices)
  std::vector<double> val_auc;      // validation disease AUC of every probes.l2_choices value
};

/// One scored split: the disease probe and the fresh SA (leakage) probe fitted on the training
/// embeddings (N, D), scored on `z` (M, D), the embeddings of `split`'s rows, with their metrics
/// (docs/metrics.md): classification_metrics, sa_leakage_*, and frozen_sa_* when g is given.
struct ScoredSplit {
  std::vector<double> score, leak_score, frozen_score;  // per row of the split (frozen: empty without g)
  std::map<std::string, double> metrics;
};

ScoredSplit score_split(const torch::Tensor& z_train, const torch::Tensor& z, const data::ImageSet& split, const EvalContext& e,
                        const config::ProbeOptions& disease_options) {
  ScoredSplit s;
  s.score = to_doubles(probe::LinearProbe::fit(z_train, e.y_train, disease_options).probability(z));
  s.leak_score = to_doubles(probe::LinearProbe::fit(z_train, e.a_train, e.probes).probability(z));
  s.metrics = metrics::classification_metrics(s.score, split.label, split.sa);
  if (e.frozen != nullptr) {
    s.frozen_score = to_doubles(e.frozen->probability(z));
    s.metrics["frozen_sa_accuracy"] = metrics::accuracy(s.frozen_score, split.sa);
    s.metrics["frozen_sa_auc"] = metrics::roc_auc(s.frozen_score, split.sa);
  }
  s.metrics["sa_leakage_auc"] = metrics::roc_auc(s.leak_score, split.sa);
  s.metrics["sa_leakage_accuracy"] = metrics::accuracy(s.leak_score, split.sa);
  return s;
}

/// The disease probe (its L2 chosen on validation with probes.l2_choices), the fresh attack
/// probes (sex: logistic; age, when the data have one: ridge regression), the frozen g's view,
/// and every metric of docs/metrics.md, on the test split.
Downstream evaluate(Splits z, const EvalContext& e) {
  Downstream d;
  d.z = std::move(z);
  const auto& test = e.dataset.test;
  auto disease_options = e.probes;
  if (!e.probes.l2_choices.empty()) {
    double best = -1.0;
    for (const double l2 : config::number_list(e.probes.l2_choices, "probes.l2_choices")) {
      auto o = e.probes;
      o.l2 = l2;
      d.val_auc.push_back(metrics::roc_auc(to_doubles(probe::LinearProbe::fit(d.z.train, e.y_train, o).probability(d.z.val)),
                                           e.dataset.val.label));
      if (d.val_auc.back() > best) {  // ties keep the earlier (listed first) value
        best = d.val_auc.back();
        disease_options.l2 = l2;
      }
    }
  }
  d.disease_l2 = disease_options.l2;
  ScoredSplit scored = score_split(d.z.train, d.z.test, test, e, disease_options);
  d.score = std::move(scored.score);
  d.leak_score = std::move(scored.leak_score);
  d.frozen_score = std::move(scored.frozen_score);
  auto& m = d.metrics;
  m = std::move(scored.metrics);
  m["sa_probe_clean_accuracy"] = metrics::accuracy(e.g_clean_test, test.sa);
  m["sa_probe_clean_auc"] = metrics::roc_auc(e.g_clean_test, test.sa);
  if (!e.dataset.train.age.empty()) {  // the attack on the continuous attribute
    const auto& age = e.dataset.train.age;
    const auto ridge = probe::RidgeProbe::fit(d.z.train, torch::tensor(age, torch::kFloat32), e.probes.l2);
    m["age_leakage_r2"] = metrics::r_squared(to_doubles(ridge.predict(d.z.test)),
                                             std::vector<double>(test.age.begin(), test.age.end()));
  }
  return d;
}

/// The model options of a config's [vae] section (seed: sweep.seeds), with this adversary weight.
vae::VaeOptions vae_options(const config::ExperimentConfig& c, double adversary_weight) {
  vae::VaeOptions o;
  o.latent = c.vae.latent;
  o.hidden.clear();
  for (const double w : config::number_list(c.vae.hidden, "vae.hidden")) o.hidden.push_back(static_cast<std::int64_t>(w));
  o.beta = c.vae.beta;
  o.adversary_weight = adversary_weight;
  o.adversary_steps = c.vae.adversary_steps;
  o.adversary_objective = c.vae.adversary_objective;
  o.disease_weight = c.vae.disease_weight;
  o.epochs = c.vae.epochs;
  o.batch_size = c.vae.batch_size;
  o.lr = c.vae.lr;
  o.seed = static_cast<std::uint64_t>(c.sweep.seed);
  return o;
}

/// One adversarial VAE trained on the clean training embeddings (sex adversary, and an age
/// adversary when the data have an age and vae.age_weight > 0), evaluated on its latent means.
struct VaeOutcome {
  Downstream result;
  Trace trace;  // per epoch
};

VaeOutcome run_vae(const config::ExperimentConfig& c, double adversary_weight, const Splits& clean, const EvalContext& e) {
  const auto& train = e.dataset.train;
  std::vector<vae::Attribute> attributes{{"sex", e.a_train.to(torch::kFloat32), true, 1.0}};
  if (!train.age.empty() && c.vae.age_weight > 0.0)
    attributes.push_back({"age", torch::tensor(train.age, torch::kFloat32), false, c.vae.age_weight});
  vae::AdversarialVae model(clean.train.size(1), attributes, vae_options(c, adversary_weight));
  model.train(clean.train, e.y_train.to(torch::kFloat32));
  Splits latent{model.encode_mean(clean.train), clean.val.defined() ? model.encode_mean(clean.val) : torch::Tensor(),
                model.encode_mean(clean.test)};
  VaeOutcome out{evaluate(std::move(latent), e), {}};
  out.result.metrics["reconstruction_error"] = model.reconstruction_error(clean.test);
  const auto& t = model.trace();
  for (std::size_t k = 0; k < t.loss.size(); ++k) {
    out.trace.add("epochs", static_cast<double>(k + 1));
    out.trace.add("loss", t.loss[k]);
    out.trace.add("reconstruction", t.reconstruction[k]);
    out.trace.add("kl", t.kl[k]);
    out.trace.add("adversarial_term", t.adversarial_term[k]);
    for (std::size_t a = 0; a < attributes.size(); ++a) {
      out.trace.add("adversary_loss_" + attributes[a].name, t.adversary_loss[a][k]);
      if (attributes[a].binary) out.trace.add(a == 0 ? "sa_accuracy" : "adversary_accuracy_" + attributes[a].name,
                                              t.adversary_accuracy[a][k]);
    }
  }
  return out;
}

void say(const RunContext& ctx, const std::string& line) {
  if (ctx.log != nullptr) *ctx.log << line + "\n" << std::flush;  // one write: lines stay whole beside rank 0's progress thread
}

}  // namespace

data::Dataset load_dataset(const config::ExperimentConfig& c, const std::string& output_dir) {
  if (c.data.source == "phantom") return data::make_phantom(phantom_options(c));
  if (c.data.source == "embeddings") {
    if (!c.data_hash.empty() && embeddings_hash(c) != c.data_hash)
      throw DataError(c.data.embeddings + ": the file changed since the run started (its content hash is not the one "
                      "in the experiment's id)");
    return data::read_embeddings(c.data.embeddings, c.data.embeddings_group);
  }
  // `dne run` decoded the images once, before the sweep, into the run's cache.
  if (!c.data_hash.empty()) {
    const auto cache = data::image_cache_path(output_dir, c.data_hash, c.data.image_size, c.data.resize);
    if (std::filesystem::is_regular_file(cache))
      return data::read_image_cache(cache, c.data_hash, c.data.image_size, c.data.resize);
  }
  return data::decode_manifest(data::read_manifest(c.data.manifest, manifest_options(c)), decode_options(c, 1));
}

data::Dataset load_dataset_streamed(const config::ExperimentConfig& c, const std::string& output_dir,
                                    std::shared_ptr<const data::ImageCacheMap>& cache) {
  cache.reset();
  if (c.data.source == "manifest" && !c.data_hash.empty()) {
    const auto path = data::image_cache_path(output_dir, c.data_hash, c.data.image_size, c.data.resize);
    if (std::filesystem::is_regular_file(path)) {
      cache = std::make_shared<const data::ImageCacheMap>(path, c.data_hash, c.data.image_size, c.data.resize);
      return cache->tables();
    }
  }
  return load_dataset(c, output_dir);
}

std::string embeddings_hash(const config::ExperimentConfig& c) {
  return hex16(fnv1a64(file_content_hash(c.data.embeddings) + "\n" +
                       data::find_embedding_group(c.data.embeddings, c.data.embeddings_group)));
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
  d.max_pixels = c.data.max_pixels;
  return d;
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
  p.n_val = static_cast<int>(c.data.n_val);
  p.bias = c.data.bias;
  p.prevalence = c.data.prevalence;
  p.breast_contrast = c.data.breast_contrast;
  p.marker_rate_a1 = c.data.marker_rate_a1;
  p.marker_rate_a0 = c.data.marker_rate_a0;
  p.severity_min = c.data.severity_min;
  p.severity_max = c.data.severity_max;
  p.noise_std = c.data.noise_std;
  p.age_effect = c.data.age_effect;
  p.age_bias = c.data.age_bias;
  p.seed = static_cast<std::uint64_t>(c.sweep.seed);
  return p;
}

std::string experiment_path(const std::string& dir, const std::string& id) {
  return (std::filesystem::path(dir) / store::experiment_file(id)).string();
}

double estimated_cost(const config::ExperimentConfig& c) {
  const bool rows_known = c.data.source != "phantom" && c.data_rows_train >= 0;
  const double n_train = static_cast<double>(rows_known ? c.data_rows_train : c.data.n_train);
  const double n_test = static_cast<double>(rows_known ? c.data_rows_test : c.data.n_test);
  const auto kind = config::method_info(c.dne.method).kind;
  // clean + debiased, and the norm-matched control's pass for every noise experiment; the
  // embedding methods embed once (an embeddings file not at all)
  double embed = (kind == config::MethodKind::kReference ? 2.0 : kind == config::MethodKind::kEmbedding ? 1.0 : 3.0) *
                 (n_train + n_test);
  if (c.data.source == "embeddings") embed = 0.0;
  const double epochs = static_cast<double>(c.dne.epochs);
  const double per_image_zo = static_cast<double>(2 * c.gezo.candidates + 1);
  double edit = 0.0;
  if (kind == config::MethodKind::kWhiteBox) {
    edit = 3.0 * epochs * n_train;  // forward + backward
  } else if (kind == config::MethodKind::kZerothOrder) {
    const double local = c.dne.method == "gezo" ? static_cast<double>(c.gezo.local_epochs) : 1.0;  // GeZO's R
    edit = epochs * n_train * local * per_image_zo;
    if (c.gezo.budget > 0) edit = std::min(edit, static_cast<double>(c.gezo.budget));
  } else if (kind == config::MethodKind::kEmbedding) {
    // two VAEs (the method and its control), a row-epoch of an MLP counted as 1% of an image pass
    edit = 2.0 * 0.01 * static_cast<double>(c.vae.epochs) * n_train * static_cast<double>(1 + c.vae.adversary_steps);
  }
  return std::max(embed + edit, 1.0);  // the probes: no experiment costs nothing
}

double estimated_memory_bytes(const config::ExperimentConfig& c) {
  const bool manifest_rows = c.data.source == "manifest" && c.data_rows_train >= 0 && c.data_rows_test >= 0;
  if (c.data.source != "phantom" && !manifest_rows) return 0.0;
  const auto n_train = static_cast<double>(manifest_rows ? c.data_rows_train : c.data.n_train);
  const auto n_test = static_cast<double>(manifest_rows ? c.data_rows_test : c.data.n_test);
  const double images = n_train + n_test + (manifest_rows ? 0.0 : static_cast<double>(c.data.n_val));
  const double pixels = images * static_cast<double>(c.data.image_size) * static_cast<double>(c.data.image_size);
  const double in_memory = manifest_rows ? 0.0 : pixels + 4.0 * pixels;  // the phantom: 8-bit while drawn, float32
  const double embeddings = 3.0 * 4.0 * images * static_cast<double>(c.fm.embed_dim);  // clean, method, control
  return in_memory + embeddings;
}

ExperimentSummary run_experiment(const config::ExperimentConfig& c, const RunContext& ctx) {
  const auto t0 = Clock::now();
  std::map<std::string, double> timings;
  ExperimentSummary summary;
  summary.id = c.id();
  summary.path = experiment_path(ctx.run.output_dir, summary.id);
  const auto seed = static_cast<std::uint64_t>(c.sweep.seed);
  const auto kind = config::method_info(c.dne.method).kind;
  const bool images = c.data.source != "embeddings";  // else the rows are embeddings already
  say(ctx, "[" + summary.id + "] method=" + c.dne.method + (config::learns_noise(c.dne.method) ? " lambda=" + std::to_string(c.dne.lambda) : "") +
               " seed=" + std::to_string(c.sweep.seed));

  // 1. Data: (N, 1, H, W) images (or (N, D) embeddings), labels, sensitive attribute.
  auto t = Clock::now();
  std::shared_ptr<const data::ImageCacheMap> cache;  // the run's image cache, mapped (manifests)
  data::Dataset dataset = load_dataset_streamed(c, ctx.run.output_dir, cache);
  data::validate(dataset.train, "train split");
  data::validate(dataset.test, "test split");
  // The label-poisoning attack hits the training data as delivered (before the validation carve).
  const auto poisoned = data::poison_labels(dataset.train, c.data.poison_rate, static_cast<int>(c.data.poison_group), seed);
  data::carve_validation(dataset, c.data.val_fraction, seed);  // before anything is fitted
  // data.resample: what this seed draws of the (rest of the) training split; val and test stay.
  data::resample_training(dataset, c.data.resample, c.data.resample_fraction, seed);
  const bool has_val = dataset.val.size() > 0;
  // The images as float32 batches on demand: views of the pixels in memory (the phantom, an
  // embeddings file's rows; `dataset` lives until the end), or rows of the mapped cache, one copy
  // per node: no rank holds a manifest's images.
  const auto x_train = editing::ImageRows::of(dataset.train, cache), x_test = editing::ImageRows::of(dataset.test, cache);
  const auto x_val = has_val ? editing::ImageRows::of(dataset.val, cache) : editing::ImageRows();
  const auto y_train = int_tensor(dataset.train.label), a_train = int_tensor(dataset.train.sa);
  timings["data_s"] = seconds_since(t);

  std::unique_ptr<comm::Communicator> alone;
  comm::Communicator* group = ctx.group;
  if (group == nullptr) {
    alone = comm::make_self_communicator();
    group = alone.get();
  }

  // 2. Foundation model and clean embeddings (N, D); the rows themselves for an embeddings file.
  // A split is embedded in chunks of fm.batch_size dealt over the group (embed_over_group): the
  // same chunks, so the same bits, as on one rank, and a remote request that fails on one rank
  // stops the whole group.
  t = Clock::now();
  std::shared_ptr<fm::EmbeddingModel> model;
  torch::Device edit_device = torch::kCPU;  // where the editor works: the in-process FM's device
  std::map<std::string, std::string> fm_provenance;
  // N images (+ eps (H, W) when defined: x + eps, batch by batch) -> (N, D)
  const auto embed_split = [&](const editing::ImageRows& x, const torch::Tensor& eps) {
    auto z = editing::embed_over_group(
        x.size(), c.fm.batch_size, model->embed_dim(), model->parallelism(),
        [&](std::int64_t begin, std::int64_t end) {
          const auto batch = x.slice(begin, end);
          return eps.defined() ? editing::add_noise(batch, eps, c.dne) : batch;
        },
        [&](const std::vector<torch::Tensor>& batches) { return model->embed_each(batches); }, *group);
    if (!torch::isfinite(z).all().item<bool>())
      throw ModelError("foundation model returned non-finite embeddings (NaN/Inf in input or weights)");
    return z;
  };
  Splits clean;
  if (images) {
    std::exception_ptr failure;  // connecting to a remote FM can fail on one rank only
    try {
      model = fm::make_embedding_model(c.fm, c.api, dataset.train.height, seed);
      // run.device = "cuda": an in-process FM's forwards run on this rank's GPU at run.precision.
      // The editor then works there too (EditProblem::device); a remote FM's editor stays on the host.
      if (auto in_process = std::dynamic_pointer_cast<fm::DifferentiableModel>(model); in_process && ctx.device == "cuda") {
        edit_device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(ctx.cuda_index));
        model = fm::on_device(in_process, edit_device, c.run.precision);
      }
    } catch (const Error&) {
      failure = std::current_exception();
    }
    editing::agree_on_failure(*group, failure);
    fm_provenance = model->provenance();
    if (!c.fm_hash.empty() && (fm_provenance.count("hash") == 0 || fm_provenance.at("hash") != c.fm_hash))
      throw ModelError((c.fm.kind == "torchscript" ? c.fm.torchscript : c.fm.weights) +
                       ": the FM file changed since the run started (content hash " +
                       (fm_provenance.count("hash") ? fm_provenance.at("hash") : std::string("?")) + ", expected " +
                       c.fm_hash + ")");
    clean.train = embed_split(x_train, {});
    clean.test = embed_split(x_test, {});
    if (has_val && kind == config::MethodKind::kEmbedding) clean.val = embed_split(x_val, {});
  } else {
    const auto rows = [](const editing::ImageRows& x) {
      return x.defined() ? x.tensor().reshape({x.size(), x.width()}) : torch::Tensor();
    };
    clean = Splits{rows(x_train), rows(x_val), rows(x_test)};
  }
  timings["embed_clean_s"] = seconds_since(t);

  // 3. Frozen SA probe g on clean train embeddings.
  t = Clock::now();
  const auto g = probe::LinearProbe::fit(clean.train, a_train, c.probes);
  EvalContext eval{dataset, y_train, a_train, &g, to_doubles(g.probability(clean.test)), c.probes};
  timings["sa_probe_s"] = seconds_since(t);
  // Cancellation points (SIGTERM / SIGINT, core/stop_signal.hpp) are every group agreement
  // (embedding chunks, editor steps) and these phase boundaries; once the control's embeddings
  // are in, the experiment finishes and writes its file.
  editing::stop_point(*group, "before the method ran");

  // 4-6. The method and its control, each through the same probes and metrics.
  Downstream result, control;
  torch::Tensor noise, control_noise;  // (H, W), noise methods only
  Trace trace, progress;  // progress: dne.eval_every's validation measurements
  std::map<std::string, double> control_on_validation;  // the same for the control noise (at the end)
  std::vector<double> val_losses;
  std::int64_t kept_checkpoint = -1;
  std::optional<data::PhantomRegions> regions;  // where the phantom draws the SA cues and the effusion
  if (kind == config::MethodKind::kEmbedding) {
    // The adversarial VAE on the clean embeddings; its control is the same VAE without the
    // adversary (what the bottleneck alone removes). The latent space is not g's: no frozen metrics.
    t = Clock::now();
    eval.frozen = nullptr;
    auto debiased = run_vae(c, c.vae.adversary_weight, clean, eval);
    result = std::move(debiased.result);
    trace = std::move(debiased.trace);
    timings["edit_s"] = seconds_since(t);
    editing::stop_point(*group, "before the control ran");
    t = Clock::now();
    control = run_vae(c, 0.0, clean, eval).result;
    summary.control_metrics = control.metrics;
    timings["control_s"] = seconds_since(t);
  } else if (!images) {
    result = evaluate(clean, eval);  // ERM on the embeddings as given
  } else {
    // A noise's effect on the validation split (dne.eval_every): the probes of score_split fitted
    // on the noised training split with probes.* (no L2 choice), scored on the noised validation split.
    const auto effect_on_validation = [&](const torch::Tensor& eps) {  // eps (H, W) on the host
      torch::NoGradGuard no_grad;
      const auto scored = score_split(embed_split(x_train, eps), embed_split(x_val, eps), dataset.val, eval, c.probes);
      std::map<std::string, double> out{{"noise_l2", eps.pow(2).sum().sqrt().item<double>()}};
      for (const char* name : {"accuracy", "auc", "eo_n", "eo_p", "sa_leakage_auc", "frozen_sa_accuracy"})
        out[std::string("val_") + name] = scored.metrics.at(name);
      return out;
    };
    // 4. Noise editor. Black-box editors see only the API; the group shares their queries.
    t = Clock::now();
    fm::ApiOptions api_options;
    api_options.budget_images = c.gezo.budget;  // per-rank guard; the editor enforces the group total
    api_options.max_batch = c.api.max_batch;
    api_options.latency_ms = c.api.latency_ms;
    api_options.round_decimals = c.api.round_decimals;
    fm::EmbeddingApi api(model, api_options);
    editing::ModelAccess access{dynamic_cast<fm::DifferentiableModel*>(model.get()), api, *group};
    editing::EditProblem problem{x_train, a_train.to(torch::kFloat32), &g, c.dne, seed, c.gezo, c.comm, c.probes, edit_device};
    // dne.eval_every: the noise's effect on the validation split as queries are spent (/progress).
    if (c.dne.eval_every > 0 && !has_val)
      throw ConfigError("dne.eval_every = " + std::to_string(c.dne.eval_every) +
                        " needs a validation split: set data.n_val > 0 (phantom) or data.val_fraction > 0 (or give the manifest val rows)");
    const auto progress_start = Clock::now();
    problem.progress = [&](const torch::Tensor& eps, std::int64_t queries) {
      progress.add("queries", static_cast<double>(queries));
      for (const auto& [name, value] : effect_on_validation(eps.to(torch::kCPU))) progress.add(name, value);
      progress.add("wall_s", seconds_since(progress_start));
    };
    editing::EditResult edit = editing::find_editor(c.dne.method)(problem, access);
    timings["edit_s"] = seconds_since(t);
    double group_api_images = static_cast<double>(api.images());
    group->allreduce_sum(&group_api_images, 1);
    if (group_api_images != static_cast<double>(c.dne.method == "whitebox" ? 0 : edit.queries))
      throw Error("internal: the group's API calls (" + std::to_string(group_api_images) +
                  " images) disagree with the editor's count (" + std::to_string(edit.queries) + ")");
    summary.queries = edit.queries;
    summary.status = edit.status;
    trace = std::move(edit.trace);

    // 4b. dne.keep = "best_val": of the epoch-end noises (and the last one, if the editor stopped
    // early), keep the one with the lowest DNE loss on the validation split under the frozen g.
    noise = edit.noise.detach();
    if (c.dne.keep == "best_val" && config::learns_noise(c.dne.method)) {
      auto candidates = edit.checkpoints;
      if (candidates.empty() || !torch::equal(candidates.back(), noise)) candidates.push_back(noise);
      torch::NoGradGuard no_grad;
      const auto a_val = int_tensor(dataset.val.sa).to(torch::kFloat32);
      for (std::size_t k = 0; k < candidates.size(); ++k) {
        const auto z = embed_split(x_val, candidates[k]);
        val_losses.push_back(editing::dne_objective(g.logits(z), a_val, candidates[k], c.dne).loss.item<double>());
        if (kept_checkpoint < 0 || val_losses.back() < val_losses[static_cast<std::size_t>(kept_checkpoint)])
          kept_checkpoint = static_cast<std::int64_t>(k);
      }
      noise = candidates[static_cast<std::size_t>(kept_checkpoint)];
    }

    // 5-6. Debiased embeddings (N, D) of x + eps, disease probe, fresh SA (leakage) probe, metrics.
    t = Clock::now();
    if (c.data.source == "phantom") regions = data::phantom_regions(phantom_options(c));
    // ERM's noise is zero and x + 0 = x bit for bit: its debiased embeddings are the clean ones.
    const bool noise_is_zero = kind == config::MethodKind::kReference;
    const auto downstream = [&](const torch::Tensor& eps) {
      const auto embed = [&](const editing::ImageRows& x, const torch::Tensor& clean_z) {
        if (!x.defined()) return torch::Tensor();
        if (noise_is_zero && clean_z.defined()) return clean_z;
        return embed_split(x, eps);
      };
      const bool val_needed = !c.probes.l2_choices.empty() || ctx.run.save_embeddings;
      Downstream d = evaluate(Splits{embed(x_train, clean.train), val_needed ? embed(x_val, clean.val) : torch::Tensor(),
                                     embed(x_test, clean.test)},
                              eval);
      d.metrics["noise_l2"] = eps.pow(2).sum().sqrt().item<double>();
      d.metrics["noise_linf"] = eps.abs().max().item<double>();
      if (regions)
        for (const auto& [name, value] : metrics::noise_energy_by_region(to_floats(eps), regions->sa_region, regions->disease_region))
          d.metrics[name] = value;
      return d;
    };
    result = downstream(noise);
    timings["downstream_s"] = seconds_since(t);

    // 6b. The norm-matched random control of every noise experiment: random noise with the learned
    // noise's L2 norm (inside its L-inf budget), through the same downstream pipeline.
    if (c.dne.method != "none") {
      editing::stop_point(*group, "before the control ran");
      t = Clock::now();
      // Random noise of the learned noise's norm, drawn in its basis (the same spatial statistics).
      const auto basis = editing::NoiseBasis::from_options(c.dne, noise.size(0), noise.size(1));
      control_noise = editing::norm_matched_noise(noise, c.dne, seed, basis);
      control = downstream(control_noise);
      summary.control_metrics = control.metrics;
      if (progress.steps() > 0)  // the control's end point beside the progress curve
        for (const auto& [name, value] : effect_on_validation(control_noise))
          if (name != "noise_l2") control_on_validation["control_" + name] = value;
      timings["control_s"] = seconds_since(t);
    }
  }
  const auto& m = result.metrics;
  summary.metrics = m;

  // A remote FM's traffic: the group's requests, retries and bytes (collective on every rank).
  const auto* remote = dynamic_cast<const fm::RemoteModel*>(model.get());
  std::vector<double> traffic;
  api::ClientStats client_stats;
  if (remote != nullptr) {
    client_stats = remote->stats();
    traffic = {static_cast<double>(client_stats.requests), static_cast<double>(client_stats.retries),
               static_cast<double>(client_stats.bytes_sent), static_cast<double>(client_stats.bytes_received)};
    group->allreduce_sum(traffic.data(), traffic.size());
  }

  // 7. Result file, written to a temporary name and renamed, by the group's rank 0 only.
  summary.wall_s = seconds_since(t0);
  if (group->rank() != 0) return summary;
  t = Clock::now();
  std::filesystem::create_directories(std::filesystem::path(summary.path).parent_path());
  store::ResultWriter w(summary.path);
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
  w.attribute("/provenance", "group_size", static_cast<std::int64_t>(group->size()));
  w.attribute("/provenance", "communicator", group->name());
  w.attribute("/provenance", "bytes_communicated", static_cast<std::int64_t>(group->bytes_communicated()));
  w.attribute("/provenance", "torch_threads", static_cast<std::int64_t>(torch::get_num_threads()));
  w.attribute("/provenance", "device", ctx.device_description);
  w.attribute("/provenance", "precision", c.run.precision);
  w.attribute("/provenance", "libtorch_cuda", ctx.libtorch_cuda);
  w.attribute("/provenance", "torch_version", std::string(TORCH_VERSION));
  w.attribute("/provenance", "hdf5_version", store::hdf5_version());
  w.attribute("/provenance", "mpi_library", ctx.mpi_library);
  w.attribute("/provenance", "compiler", std::string(build_compiler()));
  w.attribute("/provenance", "fm", model ? model->describe() : std::string("none: precomputed embeddings"));
  if (c.data.source == "manifest") {
    w.attribute("/provenance", "data_manifest", std::filesystem::absolute(c.data.manifest).string());
    w.attribute("/provenance", "data_hash", c.data_hash);  // the manifest's bytes and every image in use
  } else if (c.data.source == "embeddings") {
    w.attribute("/provenance", "data_embeddings", std::filesystem::absolute(c.data.embeddings).string());
    w.attribute("/provenance", "data_hash", c.data_hash);  // the file's bytes and the group read
  }
  for (const auto& [key, value] : fm_provenance) w.attribute("/provenance", "fm_" + key, value);
  if (remote != nullptr) {  // never the token: the client keeps it in its Authorization header only
    const auto& meta = remote->metadata();
    w.attribute("/provenance", "api_endpoint", remote->endpoint());
    w.attribute("/provenance", "api_model", meta.name);
    w.attribute("/provenance", "api_model_version", meta.versions.empty() ? std::string() : meta.versions.front());
    w.attribute("/provenance", "api_platform", meta.platform);
    w.attribute("/provenance", "api_encoding", remote->encoding());
    w.attribute("/provenance", "api_concurrency", static_cast<std::int64_t>(c.api.concurrency));
    const char* totals[] = {"api_requests", "api_retries", "api_bytes_sent", "api_bytes_received"};
    for (std::size_t i = 0; i < traffic.size(); ++i) w.attribute("/provenance", totals[i], static_cast<std::int64_t>(traffic[i]));
    auto latency = client_stats.latency_ms;  // this rank's successful requests
    std::sort(latency.begin(), latency.end());
    for (const auto& [name, q] : {std::pair<const char*, double>{"api_latency_p50_ms", 0.5}, {"api_latency_p90_ms", 0.9}, {"api_latency_p99_ms", 0.99}})
      w.attribute("/provenance", name,
                  latency.empty() ? std::nan("")
                                  : latency[static_cast<std::size_t>(std::ceil(q * static_cast<double>(latency.size()))) - 1]);
  }
  w.attribute("/provenance", "queries", summary.queries);
  const auto& label = dataset.test.label;
  const auto& sa = dataset.test.sa;
  const auto n_test = static_cast<std::uint64_t>(label.size());
  w.dataset("/test/score", std::vector<double>(result.score), {n_test});
  w.dataset("/test/label", std::vector<std::int32_t>(label.begin(), label.end()), {n_test});
  w.dataset("/test/sa", std::vector<std::int32_t>(sa.begin(), sa.end()), {n_test});
  if (!dataset.test.age.empty()) w.dataset("/test/age", dataset.test.age, {n_test});
  if (!result.frozen_score.empty()) w.dataset("/test/frozen_sa_score", std::vector<double>(result.frozen_score), {n_test});
  w.dataset("/test/leakage_sa_score", std::vector<double>(result.leak_score), {n_test});
  if (images) {
    // One clean test image per (sa, label) cell, in order a0y0, a0y1, a1y0, a1y1, for figures.
    const auto& test = dataset.test;
    std::vector<float> example_pixels;
    std::vector<std::int32_t> ex_sa, ex_label;
    for (int a = 0; a <= 1; ++a)
      for (int y = 0; y <= 1; ++y)
        for (std::size_t i = 0; i < label.size(); ++i)
          if (sa[i] == a && label[i] == y) {
            const auto image = to_floats(x_test.slice(static_cast<std::int64_t>(i), static_cast<std::int64_t>(i) + 1));  // (1, 1, H, W)
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
  for (const auto& [name, value] : m) w.attribute("/metrics", name, value);
  if (noise.defined()) {
    const auto h = static_cast<std::uint64_t>(noise.size(0)), wd = static_cast<std::uint64_t>(noise.size(1));
    w.dataset("/noise", to_floats(noise), {h, wd});
    if (regions) {
      const std::vector<std::uint64_t> shape{h, wd};
      w.dataset("/regions/sa", std::vector<std::int32_t>(regions->sa_region.begin(), regions->sa_region.end()), shape);
      w.dataset("/regions/disease", std::vector<std::int32_t>(regions->disease_region.begin(), regions->disease_region.end()), shape);
      w.dataset("/regions/breast_map", std::vector<float>(regions->breast), shape);
      w.dataset("/regions/marker_map", std::vector<float>(regions->marker), shape);
      w.dataset("/regions/effusion_map", std::vector<float>(regions->effusion), shape);
    }
    if (control_noise.defined()) w.dataset("/control/noise", to_floats(control_noise), {h, wd});
  }
  if (!control.metrics.empty()) {
    w.attribute("/control", "kind", kind == config::MethodKind::kEmbedding ? std::string("vae without the adversary")
                                                                           : std::string("norm-matched random noise"));
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
  if (!control.metrics.empty()) w.attribute("/selection", "control_disease_probe_l2", control.disease_l2);
  if (kept_checkpoint >= 0) {
    w.attribute("/selection", "noise_checkpoint", kept_checkpoint);
    w.dataset("/selection/val_loss", std::vector<double>(val_losses), {val_losses.size()});
  }
  for (const auto& [name, column] : trace.columns())
    w.dataset("/trace/" + name, column, {column.size()});
  for (const auto& [name, column] : progress.columns())
    w.dataset("/progress/" + name, column, {column.size()});
  if (progress.steps() > 0) {
    w.attribute("/progress", "split", std::string("val"));
    w.attribute("/progress", "eval_every", c.dne.eval_every);
    for (const auto& [name, value] : control_on_validation) w.attribute("/progress", name, value);
  }
  if (ctx.run.save_embeddings) {
    // The method's embeddings with their rows' labels, in the layout data.source = "embeddings" reads.
    const auto rows = [](const torch::Tensor& z, const data::ImageSet& like) {
      data::ImageSet out = like;
      out.origin.clear();  // the rows are embeddings in memory now, wherever the images were
      out.origin_split = -1;
      out.height = 1;
      out.width = z.size(1);
      out.pixels = to_floats(z);
      return out;
    };
    data::write_embedding_split(w, "/embeddings/train", rows(result.z.train, dataset.train));
    if (has_val && result.z.val.defined()) data::write_embedding_split(w, "/embeddings/val", rows(result.z.val, dataset.val));
    data::write_embedding_split(w, "/embeddings/test", rows(result.z.test, dataset.test));
  }
  w.flush();  // the data on disk: write_s and total_s cover it (only the timings, close and rename follow)
  timings["write_s"] = seconds_since(t);
  summary.wall_s = seconds_since(t0);
  timings["total_s"] = summary.wall_s;
  for (const auto& [name, value] : timings) w.attribute("/timings", name, value);
  w.commit();

  say(ctx, "[" + summary.id + "] done in " + std::to_string(summary.wall_s) + " s: accuracy=" +
               std::to_string(m.at("accuracy")) + " eo_p=" + std::to_string(m.at("eo_p")) +
               (m.count("frozen_sa_accuracy") ? " frozen_sa_accuracy=" + std::to_string(m.at("frozen_sa_accuracy")) : "") +
               " sa_leakage_auc=" + std::to_string(m.at("sa_leakage_auc")));
  return summary;
}

}  // namespace dne::experiment
