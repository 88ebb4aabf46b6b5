// The method registry and the method stages it runs (see method_registry.hpp, stages.hpp):
//   run_reference   ERM: on images the zero noise through the noise pipeline (x + 0 = x, so
//                   its embeddings are the clean ones); on an embeddings file the rows as given
//   run_noise       every noise method: the editor -> eps (+ dne.keep's choice on validation)
//                   -> phi(x + eps) -> evaluate(), and the norm-matched random control
//   run_vae         the adversarial VAE on the clean embeddings -> its latent means ->
//                   evaluate(), and the same VAE without the adversary as the control
#include "dne/experiment/method_registry.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "dne/comm/group_agreement.hpp"
#include "dne/core/errors.hpp"
#include "dne/editing/noise_basis.hpp"
#include "dne/editing/objective.hpp"
#include "dne/editing/zeroth_order.hpp"
#include "dne/experiment/component_options.hpp"
#include "dne/experiment/stages.hpp"
#include "dne/metrics/metrics.hpp"
#include "dne/vae/adversarial_vae.hpp"

namespace dne::experiment {
namespace {

using Clock = std::chrono::steady_clock;

/// One adversarial VAE trained on the clean training embeddings (sex adversary, and an age
/// adversary when the data have an age and vae.age_weight > 0), evaluated on its latent means.
struct VaeOutcome {
  Downstream result;
  Trace trace;  // per epoch
};

VaeOutcome train_vae(const config::ExperimentConfig& c, double adversary_weight, const Splits& clean, const EvalContext& e) {
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

/// The adversarial VAE on the clean embeddings; its control is the same VAE without the
/// adversary (what the bottleneck alone removes). The latent space is not g's: no frozen metrics.
void run_vae(ExperimentState& s) {
  auto& o = s.outcome;
  auto t = Clock::now();
  s.eval->frozen = nullptr;
  auto debiased = train_vae(s.c, s.c.vae.adversary_weight, s.clean, *s.eval);
  o.result = std::move(debiased.result);
  o.trace = std::move(debiased.trace);
  s.timings["edit_s"] = seconds_since(t);
  comm::stop_point(*s.group, "before the control ran");
  t = Clock::now();
  o.control = train_vae(s.c, 0.0, s.clean, *s.eval).result;
  s.timings["control_s"] = seconds_since(t);
}

/// A noise's effect on the validation split (dne.eval_every): the probes of score_split fitted
/// on the noised training split with probes.* (no L2 choice), scored on the noised validation split.
std::map<std::string, double> effect_on_validation(const ExperimentState& s, const torch::Tensor& eps) {  // eps (H, W) on the host
  torch::NoGradGuard no_grad;
  const auto scored = score_split(s.embed(s.x_train, eps), s.embed(s.x_val, eps), s.dataset.val, *s.eval, s.c.probes);
  std::map<std::string, double> out{{"noise_l2", eps.pow(2).sum().sqrt().item<double>()}};
  for (const char* name : {"accuracy", "auc", "eo_n", "eo_p", "sa_leakage_auc", "frozen_sa_accuracy"})
    out[std::string("val_") + name] = scored.metrics.at(name);
  return out;
}

/// The method's editor on the training split. Black-box editors see only the API; the group
/// shares their queries. Fills the outcome's trace, status and queries; returns the edit.
editing::EditResult run_editor(ExperimentState& s) {
  const auto& c = s.c;
  auto& o = s.outcome;
  fm::EmbeddingApi api(s.model, api_options(c, c.zo.budget));  // per-rank guard; the editor enforces the group total
  editing::ModelAccess access{dynamic_cast<fm::DifferentiableModel*>(s.model.get()), api, *s.group};
  editing::EditProblem problem{s.x_train, s.a_train.to(torch::kFloat32), &*s.g, c.dne, s.seed, c.zo, c.comm, c.probes, s.edit_device};
  // dne.eval_every: the noise's effect on the validation split as queries are spent (/progress).
  if (c.dne.eval_every > 0 && !s.has_val)
    throw ConfigError("dne.eval_every = " + std::to_string(c.dne.eval_every) +
                      " needs a validation split: set data.n_val > 0 (phantom) or data.val_fraction > 0 (or give the manifest val rows)");
  const auto progress_start = Clock::now();
  problem.progress = [&](const torch::Tensor& eps, std::int64_t queries) {
    o.progress.add("queries", static_cast<double>(queries));
    for (const auto& [name, value] : effect_on_validation(s, eps.to(torch::kCPU))) o.progress.add(name, value);
    o.progress.add("wall_s", seconds_since(progress_start));
  };
  editing::EditResult edit = method(c.dne.method).edit(problem, access);
  double group_api_images = static_cast<double>(api.images());
  s.group->allreduce_sum(&group_api_images, 1);
  if (group_api_images != static_cast<double>(s.method_info.kind == config::MethodKind::kWhiteBox ? 0 : edit.queries))
    throw Error("internal: the group's API calls (" + std::to_string(group_api_images) +
                " images) disagree with the editor's count (" + std::to_string(edit.queries) + ")");
  o.queries = edit.queries;
  o.status = edit.status;
  o.trace = std::move(edit.trace);
  return edit;
}

/// dne.keep = "best_val": of the epoch-end noises (and the last one, if the editor stopped
/// early), the one with the lowest DNE loss on the validation split under the frozen g.
torch::Tensor keep_best_on_validation(ExperimentState& s, const editing::EditResult& edit) {
  auto& o = s.outcome;
  auto candidates = edit.checkpoints;
  const auto last = edit.noise.detach();
  if (candidates.empty() || !torch::equal(candidates.back(), last)) candidates.push_back(last);
  torch::NoGradGuard no_grad;
  const auto a_val = int_tensor(s.dataset.val.sa).to(torch::kFloat32);
  for (std::size_t k = 0; k < candidates.size(); ++k) {
    const auto z = s.embed(s.x_val, candidates[k]);
    o.val_losses.push_back(editing::dne_objective(s.g->logits(z), a_val, candidates[k], s.c.dne).loss.item<double>());
    if (o.kept_checkpoint < 0 || o.val_losses.back() < o.val_losses[static_cast<std::size_t>(o.kept_checkpoint)])
      o.kept_checkpoint = static_cast<std::int64_t>(k);
  }
  return candidates[static_cast<std::size_t>(o.kept_checkpoint)];
}

/// phi(x + eps) of every split the probes need -> evaluate(), with the noise's size and, on the
/// phantom, its energy by region.
Downstream evaluate_noise(const ExperimentState& s, const torch::Tensor& eps) {
  // ERM's noise is zero and x + 0 = x bit for bit: its debiased embeddings are the clean ones.
  const bool noise_is_zero = s.method_info.kind == config::MethodKind::kReference;
  const auto embed = [&](const editing::ImageRows& x, const torch::Tensor& clean_z) {
    if (!x.defined()) return torch::Tensor();
    if (noise_is_zero && clean_z.defined()) return clean_z;
    return s.embed(x, eps);
  };
  const bool val_needed = !s.c.probes.l2_choices.empty() || s.ctx.run.save_embeddings;
  Downstream d = evaluate(Splits{embed(s.x_train, s.clean.train), val_needed ? embed(s.x_val, s.clean.val) : torch::Tensor(),
                                 embed(s.x_test, s.clean.test)},
                          *s.eval);
  d.metrics["noise_l2"] = eps.pow(2).sum().sqrt().item<double>();
  d.metrics["noise_linf"] = eps.abs().max().item<double>();
  if (const auto& regions = s.outcome.regions)
    for (const auto& [name, value] : metrics::noise_energy_by_region(to_floats(eps), regions->sa_region, regions->disease_region))
      d.metrics[name] = value;
  return d;
}

/// Every noise method (ERM's zero noise included): the editor, dne.keep's choice, the debiased
/// embeddings and their evaluation, then the norm-matched random control through the same
/// pipeline: random noise with the learned noise's L2 norm (inside its L-inf budget), drawn in
/// its basis (the same spatial statistics).
void run_noise(ExperimentState& s) {
  const auto& c = s.c;
  auto& o = s.outcome;
  auto t = Clock::now();
  const auto edit = run_editor(s);
  s.timings["edit_s"] = seconds_since(t);
  o.noise = c.dne.keep == "best_val" && config::learns_noise(c.dne.method) ? keep_best_on_validation(s, edit) : edit.noise.detach();

  t = Clock::now();
  if (c.data.source == "phantom") o.regions = data::phantom_regions(phantom_options(c));
  o.result = evaluate_noise(s, o.noise);
  s.timings["downstream_s"] = seconds_since(t);

  if (s.method_info.kind == config::MethodKind::kReference) return;  // ERM has no control
  comm::stop_point(*s.group, "before the control ran");
  t = Clock::now();
  const auto basis = editing::NoiseBasis::from_options(c.dne, o.noise.size(0), o.noise.size(1));
  o.control_noise = editing::norm_matched_noise(o.noise, c.dne, s.seed, basis);
  o.control = evaluate_noise(s, o.control_noise);
  if (o.progress.steps() > 0)  // the control's end point beside the progress curve
    for (const auto& [name, value] : effect_on_validation(s, o.control_noise))
      if (name != "noise_l2") o.control_on_validation["control_" + name] = value;
  s.timings["control_s"] = seconds_since(t);
}

void run_reference(ExperimentState& s) {
  if (s.images) return run_noise(s);
  s.outcome.result = evaluate(s.clean, *s.eval);  // ERM on the embeddings as given
}

editing::EditResult whitebox_editor(const editing::EditProblem& p, editing::ModelAccess& m) {
  if (m.whitebox == nullptr) throw ConfigError("dne.method = \"whitebox\" needs an FM in this process (gradients)");
  return editing::edit_whitebox(p, *m.whitebox, m.group);
}

}  // namespace

const std::vector<Method>& method_registry() {
  static const std::vector<Method> registry = [] {
    using editing::EditProblem, editing::ModelAccess;
    struct Code {
      const char* name;
      void (*run)(ExperimentState&);
      editing::Editor edit;
    };
    const std::vector<Code> code = {
        {"none", run_reference, [](const EditProblem& p, ModelAccess&) { return editing::edit_none(p); }},
        {"random", run_noise, [](const EditProblem& p, ModelAccess&) { return editing::edit_random(p); }},
        {"whitebox", run_noise, whitebox_editor},
        {"gezo", run_noise, [](const EditProblem& p, ModelAccess& m) { return editing::edit_gezo(p, m.api, m.group); }},
        {"rge", run_noise, [](const EditProblem& p, ModelAccess& m) { return editing::edit_rge(p, m.api, m.group); }},
        {"spsa", run_noise, [](const EditProblem& p, ModelAccess& m) { return editing::edit_spsa(p, m.api, m.group); }},
        {"nes", run_noise, [](const EditProblem& p, ModelAccess& m) { return editing::edit_nes(p, m.api, m.group); }},
        {"vae", run_vae, {}},
    };
    std::vector<Method> out;
    for (const auto& info : config::method_table()) {
      const auto it = std::find_if(code.begin(), code.end(), [&](const Code& k) { return info.name == k.name; });
      if (it == code.end()) throw std::logic_error("internal: method '" + info.name + "' has no code in the method registry");
      out.push_back(Method{info, it->run, it->edit});
    }
    if (out.size() != code.size()) throw std::logic_error("internal: the method registry has code for an unknown method");
    return out;
  }();
  return registry;
}

const Method& method(const std::string& name) {
  const auto& info = config::method_info(name);  // ConfigError listing the names
  for (const auto& m : method_registry())
    if (&m.info == &info) return m;
  throw std::logic_error("internal: method '" + name + "' is not in the registry");
}

}  // namespace dne::experiment
