// Noise bases: pixel, bilinear low-resolution and low-frequency DCT (see noise_basis.hpp).
#include "dne/editing/noise_basis.hpp"

#include <cmath>

#include "dne/core/errors.hpp"
#include "dne/core/random.hpp"
#include "dne/editing/objective.hpp"

namespace dne::editing {

torch::Tensor bilinear_upsampling_matrix(std::int64_t n, std::int64_t k) {
  auto m = torch::zeros({n, k}, torch::kFloat64);
  auto a = m.accessor<double, 2>();
  const double ratio = static_cast<double>(k) / static_cast<double>(n);
  for (std::int64_t i = 0; i < n; ++i) {
    const double source = std::max(0.0, (static_cast<double>(i) + 0.5) * ratio - 0.5);
    const auto i0 = std::min(static_cast<std::int64_t>(source), k - 1);
    const auto i1 = std::min(i0 + 1, k - 1);
    const double w1 = source - static_cast<double>(i0);
    a[i][i0] += 1.0 - w1;
    a[i][i1] += w1;
  }
  return m;
}

torch::Tensor dct_matrix(std::int64_t n, std::int64_t k) {
  auto m = torch::zeros({n, k}, torch::kFloat64);
  auto a = m.accessor<double, 2>();
  const double pi = std::acos(-1.0);
  for (std::int64_t u = 0; u < k; ++u) {
    const double alpha = std::sqrt((u == 0 ? 1.0 : 2.0) / static_cast<double>(n));
    for (std::int64_t i = 0; i < n; ++i)
      a[i][u] = alpha * std::cos(pi * static_cast<double>((2 * i + 1) * u) / (2.0 * static_cast<double>(n)));
  }
  return m;
}

NoiseBasis::NoiseBasis(const std::string& kind, std::int64_t k, std::int64_t height, std::int64_t width,
                       const torch::Device& device)
    : kind_(kind) {
  if (kind == "pixel") {
    shape_ = {height, width};  // no matrix: B is the identity
    return;
  }
  if (kind != "lowres" && kind != "dct")
    throw ConfigError("dne.noise_basis: unknown basis '" + kind + "' (one of: pixel, lowres, dct)");
  if (k < 1 || k > height || k > width)
    throw ConfigError("dne.noise_dim = " + std::to_string(k) + " must be between 1 and the image size (" +
                      std::to_string(std::min(height, width)) + ") for dne.noise_basis = \"" + kind + "\"");
  shape_ = {k, k};
  const auto factor = kind == "lowres" ? bilinear_upsampling_matrix : dct_matrix;
  left64_ = factor(height, k);
  right64_ = factor(width, k);
  const double frobenius2 = left64_.pow(2).sum().item<double>() * right64_.pow(2).sum().item<double>();
  scale_ = std::sqrt(static_cast<double>(height * width) / frobenius2);
  const double root = std::sqrt(scale_);
  left_ = (left64_ * root).to(device, torch::kFloat32);
  right_ = (right64_ * root).to(device, torch::kFloat32);
}

NoiseBasis NoiseBasis::from_options(const config::DneOptions& o, std::int64_t height, std::int64_t width,
                                    const torch::Device& device) {
  return NoiseBasis(o.noise_basis, o.noise_dim, height, width, device);
}

torch::Tensor NoiseBasis::expand(const torch::Tensor& theta) const {
  if (is_pixel()) return theta;
  return torch::matmul(torch::matmul(left_, theta), right_.t());  // (H, k)(k, k)(k, W)
}

torch::Tensor NoiseBasis::adjoint(const torch::Tensor& eps) const {
  if (is_pixel()) return eps;
  return torch::matmul(torch::matmul(left_.t(), eps), right_);  // (k, H)(H, W)(W, k)
}

torch::Tensor NoiseBasis::project(const torch::Tensor& theta, const config::DneOptions& o) const {
  if (is_pixel()) return project_noise(theta, o);
  torch::NoGradGuard no_grad;
  auto out = theta;
  if (o.max_l2 > 0.0) {  // B is linear: scaling theta scales eps, the exact L2 projection
    const auto norm = expand(theta).pow(2).sum().sqrt().to(torch::kFloat64);
    out = torch::where(norm > o.max_l2, theta * (o.max_l2 / norm).to(theta.scalar_type()), theta);
  }
  // Bilinear weights are convex: |theta| <= max_linf / s keeps every pixel of s L theta R^T in the box.
  if (o.max_linf > 0.0 && kind_ == "lowres") out = out.clamp(-o.max_linf / scale_, o.max_linf / scale_);
  return out;
}

torch::Tensor NoiseBasis::noise(const torch::Tensor& theta, const config::DneOptions& o) const {
  if (is_pixel()) return theta;
  auto eps = expand(theta);
  if (o.max_l2 > 0.0) {  // the scale in float64, as project_noise's
    const auto norm = eps.pow(2).sum().clamp_min(1e-24).sqrt().to(torch::kFloat64);
    eps = torch::where(norm > o.max_l2, eps * (o.max_l2 / norm).to(eps.scalar_type()), eps);
  }
  if (o.max_linf > 0.0) eps = eps.clamp(-o.max_linf, o.max_linf);
  return eps;
}

torch::Tensor norm_matched_noise(const torch::Tensor& like, const config::DneOptions& options, std::uint64_t seed,
                                 const NoiseBasis& basis) {
  if (basis.is_pixel()) return norm_matched_noise(like, options, seed);
  torch::NoGradGuard no_grad;
  std::vector<float> values(static_cast<std::size_t>(basis.size()));
  CounterStream stream(seed, StreamPurpose::kNoiseInit, 1, 0);
  stream.fill_normal(values.data(), values.size());
  const auto theta = torch::from_blob(values.data(), basis.shape(), torch::kFloat32).to(torch::kFloat64);
  const auto raw = torch::matmul(torch::matmul(basis.left(), theta), basis.right().t());  // the shape; the norm is set below
  return scaled_to_norm(raw, like, options);
}

}  // namespace dne::editing
