// DNE objective (see objective.hpp).
#include "dne/editing/objective.hpp"

#include <cmath>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/core/random.hpp"

namespace dne::editing {

torch::Tensor sa_term_per_image(const torch::Tensor& sa_logits, const torch::Tensor& sa, const std::string& objective) {
  if (objective == "neg_ce")
    return -torch::binary_cross_entropy_with_logits(sa_logits, sa, {}, {}, at::Reduction::None);
  if (objective == "confusion")
    return torch::binary_cross_entropy_with_logits(sa_logits, torch::full_like(sa, 0.5), {}, {}, at::Reduction::None);
  throw ConfigError("dne.objective: unknown objective '" + objective + "'");
}

double objective_value(double sa_term_sum, std::int64_t batch, double noise_l2, const config::DneOptions& o) {
  return o.lambda_1 * sa_term_sum / static_cast<double>(batch) + o.lambda * noise_l2;
}

torch::Tensor objective_value(const torch::Tensor& sa_term_sum, std::int64_t batch, const torch::Tensor& noise_l2,
                              const config::DneOptions& o) {
  // (s * lambda_1) / batch + n * lambda: products commute exactly, so these are the double
  // overload's operations in its order.
  return divide(sa_term_sum.to(torch::kFloat64) * o.lambda_1, static_cast<double>(batch)) + noise_l2.to(torch::kFloat64) * o.lambda;
}

torch::Tensor divide(const torch::Tensor& t, double d) { return t / torch::full({}, d, t.options()); }

ObjectiveTerms dne_objective(const torch::Tensor& sa_logits, const torch::Tensor& sa,
                             const torch::Tensor& noise, const config::DneOptions& options) {
  ObjectiveTerms t;
  t.sa_ce = torch::binary_cross_entropy_with_logits(sa_logits, sa);
  t.noise_l2 = noise.pow(2).sum().clamp_min(1e-24).sqrt();  // safe gradient at eps = 0
  t.loss = options.lambda_1 * sa_term_per_image(sa_logits, sa, options.objective).mean() +
           options.lambda * t.noise_l2;
  return t;
}

torch::Tensor project_noise(const torch::Tensor& eps, const config::DneOptions& o) {
  if (o.max_l2 <= 0.0 && o.max_linf <= 0.0) return eps;
  torch::NoGradGuard no_grad;
  auto out = eps;
  if (o.max_l2 > 0.0) {
    // On eps's device, no copy to the host; the same bits as float(max_l2 / norm) in double.
    const auto norm = eps.pow(2).sum().sqrt().to(torch::kFloat64);  // 0-dim
    const auto scale = (o.max_l2 / norm).to(torch::kFloat32);
    out = torch::where(norm > o.max_l2, eps * scale, eps);
  }
  if (o.max_linf > 0.0) out = out.clamp(-o.max_linf, o.max_linf);
  return out;
}

torch::Tensor add_noise(const torch::Tensor& images, const torch::Tensor& eps, const config::DneOptions& o) {
  const auto x = images + eps;
  return o.clip_images ? x.clamp(0.0, 1.0) : x;
}

torch::Tensor norm_matched_noise(const torch::Tensor& like, const config::DneOptions& o, std::uint64_t seed) {
  std::vector<float> values(static_cast<std::size_t>(like.numel()));
  CounterStream stream(seed, StreamPurpose::kNoiseInit, 1, 0);
  stream.fill_normal(values.data(), values.size());
  return scaled_to_norm(torch::from_blob(values.data(), like.sizes(), torch::kFloat32), like, o);
}

torch::Tensor scaled_to_norm(const torch::Tensor& raw, const torch::Tensor& like, const config::DneOptions& o) {
  torch::NoGradGuard no_grad;
  const double target = like.to(torch::kFloat64).pow(2).sum().sqrt().item<double>();
  auto eps = raw.to(torch::kCPU, torch::kFloat64);
  if (target == 0.0) return torch::zeros_like(like);
  const auto norm_at = [&](double scale) {  // ||clip(scale * eps)||, non-decreasing in scale
    auto e = eps * scale;
    if (o.max_linf > 0.0) e = e.clamp(-o.max_linf, o.max_linf);
    return e.pow(2).sum().sqrt().item<double>();
  };
  double lo = 0.0, hi = target / eps.pow(2).sum().sqrt().item<double>();
  if (o.max_linf > 0.0) {
    // Bisection on the scale: the exact norm whenever the bound allows it (at most
    // max_linf * sqrt(pixels), every pixel saturated), else the closest, fully saturated.
    while (norm_at(hi) < target && hi < 1e12) {
      lo = hi;
      hi *= 2.0;
    }
    for (int i = 0; i < 100 && hi - lo > 1e-12 * hi; ++i) {
      const double mid = 0.5 * (lo + hi);
      (norm_at(mid) < target ? lo : hi) = mid;
    }
  }
  eps = eps * hi;
  if (o.max_linf > 0.0) eps = eps.clamp(-o.max_linf, o.max_linf);
  return eps.to(torch::kFloat32);
}

}  // namespace dne::editing
