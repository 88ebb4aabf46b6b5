// DNE objective (see objective.hpp).
#include "dne/dne/objective.hpp"

#include "dne/core/errors.hpp"

namespace dne::editing {

ObjectiveTerms dne_objective(const torch::Tensor& sa_logits, const torch::Tensor& sa,
                             const torch::Tensor& noise, const config::DneOptions& options) {
  ObjectiveTerms t;
  t.sa_ce = torch::binary_cross_entropy_with_logits(sa_logits, sa);
  t.noise_l2 = noise.pow(2).sum().clamp_min(1e-24).sqrt();  // safe gradient at eps = 0
  torch::Tensor sa_term;
  if (options.objective == "neg_ce") {
    sa_term = -t.sa_ce;
  } else if (options.objective == "confusion") {
    sa_term = torch::binary_cross_entropy_with_logits(sa_logits, torch::full_like(sa, 0.5));
  } else {
    throw ConfigError("dne.objective: unknown objective '" + options.objective + "'");
  }
  t.loss = options.lambda_1 * sa_term + options.lambda * t.noise_l2;
  return t;
}

torch::Tensor project_noise(const torch::Tensor& eps, const config::DneOptions& o) {
  if (o.max_l2 <= 0.0 && o.max_linf <= 0.0) return eps;
  torch::NoGradGuard no_grad;
  auto out = eps;
  if (o.max_l2 > 0.0) {
    const double norm = eps.pow(2).sum().sqrt().item<double>();
    if (norm > o.max_l2) out = eps * static_cast<float>(o.max_l2 / norm);
  }
  if (o.max_linf > 0.0) out = out.clamp(-o.max_linf, o.max_linf);
  return out;
}

torch::Tensor add_noise(const torch::Tensor& images, const torch::Tensor& eps, const config::DneOptions& o) {
  const auto x = images + eps;
  return o.clip_images ? x.clamp(0.0, 1.0) : x;
}

}  // namespace dne::editing
