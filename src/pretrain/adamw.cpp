// AdamW and the learning-rate schedule (see adamw.hpp).
#include "dne/pretrain/adamw.hpp"

#include <cmath>

#include "dne/core/errors.hpp"

namespace dne::pretrain {

AdamW::AdamW(std::vector<torch::Tensor> params, std::vector<bool> decay, double beta1, double beta2, double eps)
    : beta1_(beta1), beta2_(beta2), eps_(eps) {
  if (params.size() != decay.size()) throw Error("AdamW: one decay flag per parameter");
  for (std::size_t i = 0; i < params.size(); ++i)
    params_.push_back({params[i], decay[i], torch::zeros_like(params[i]), torch::zeros_like(params[i])});
}

void AdamW::step(const std::vector<torch::Tensor>& grads, double lr, double weight_decay) {
  if (grads.size() != params_.size()) throw Error("AdamW: one gradient per parameter");
  torch::NoGradGuard no_grad;
  ++t_;
  const double bias_correction1 = 1.0 - std::pow(beta1_, static_cast<double>(t_));
  const double bias_correction2 = 1.0 - std::pow(beta2_, static_cast<double>(t_));
  for (std::size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    const auto& g = grads[i];
    if (p.decay) p.value.mul_(1.0 - lr * weight_decay);
    p.m.mul_(beta1_).add_(g, 1.0 - beta1_);
    p.v.mul_(beta2_).addcmul_(g, g, 1.0 - beta2_);
    const auto denom = (p.v.sqrt() / std::sqrt(bias_correction2)).add_(eps_);
    p.value.addcdiv_(p.m, denom, -lr / bias_correction1);
  }
}

double learning_rate(const config::PretrainOptions& o, std::int64_t step) {
  if (step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  const double span = static_cast<double>(std::max<std::int64_t>(1, o.steps - o.warmup_steps));
  const double progress = static_cast<double>(step - o.warmup_steps) / span;
  return o.lr * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace dne::pretrain
