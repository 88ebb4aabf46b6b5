// Logistic probes fitted with L-BFGS (see linear_probe.hpp).
#include "dne/probe/linear_probe.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dne/core/errors.hpp"

namespace dne::probe {

LinearProbe LinearProbe::fit(const torch::Tensor& z, const torch::Tensor& target,
                             const config::ProbeOptions& options) {
  TORCH_CHECK(z.dim() == 2 && target.dim() == 1 && z.size(0) == target.size(0),
              "probe: z must be (N, D) and target (N,)");
  const auto y = target.to(z.device(), torch::kFloat32);
  const double positives = y.sum().item<double>();
  if (positives < 1 || positives > static_cast<double>(y.size(0)) - 1)
    throw DataError("probe: the training targets contain a single class (" +
                    std::to_string(static_cast<long long>(positives)) + " of " +
                    std::to_string(y.size(0)) + " positive)");
  if (!torch::isfinite(z).all().item<bool>())
    throw DataError("probe: training embeddings contain NaN or Inf");

  LinearProbe probe;
  probe.mean_ = z.mean(0).detach();
  probe.inv_std_ = 1.0 / z.std(0, /*unbiased=*/false).clamp_min(1e-6).detach();
  const auto x = ((z - probe.mean_) * probe.inv_std_).detach();  // (N, D)

  const auto on = torch::TensorOptions().dtype(torch::kFloat32).device(z.device()).requires_grad(true);
  auto w = torch::zeros({z.size(1)}, on);  // on the embeddings' device
  auto b = torch::zeros({1}, on);
  torch::optim::LBFGS opt({w, b}, torch::optim::LBFGSOptions(1.0)
                                      .max_iter(options.max_iter)
                                      .tolerance_grad(1e-7)
                                      .tolerance_change(1e-10)
                                      .history_size(20)
                                      .line_search_fn("strong_wolfe"));
  const double l2 = options.l2;
  auto closure = [&]() {
    opt.zero_grad();
    auto loss = torch::binary_cross_entropy_with_logits(torch::mv(x, w) + b, y) +
                0.5 * l2 * w.pow(2).sum();
    loss.backward();
    return loss;
  };
  auto loss = opt.step(closure);
  probe.train_loss_ = loss.item<double>();
  if (!std::isfinite(probe.train_loss_)) throw NumericError("probe: training loss is not finite");
  probe.weight_ = w.detach();
  probe.bias_ = b.item<double>();
  return probe;
}

LinearProbe LinearProbe::to(const torch::Device& device) const {
  LinearProbe moved = *this;
  moved.mean_ = mean_.to(device);
  moved.inv_std_ = inv_std_.to(device);
  moved.weight_ = weight_.to(device);
  return moved;
}

torch::Tensor LinearProbe::logits(const torch::Tensor& z) const {
  return torch::mv((z - mean_) * inv_std_, weight_) + bias_;
}

torch::Tensor LinearProbe::probability(const torch::Tensor& z) const {
  torch::NoGradGuard no_grad;
  return torch::sigmoid(logits(z));
}

// The ridge probe is summed in plain loops in a fixed order, not through BLAS: OpenBLAS's
// double kernels gave the same inputs different last bits from run to run (their result depends
// on where the buffers lie), and age_leakage_r2 must be the same bits for the same config. The
// Gram matrix is O(N D^2) multiply-adds, vectorised over its columns (which keeps each sum's order).
RidgeProbe RidgeProbe::fit(const torch::Tensor& z, const torch::Tensor& target, double l2) {
  TORCH_CHECK(z.dim() == 2 && target.dim() == 1 && z.size(0) == target.size(0),
              "ridge probe: z must be (N, D) and target (N,)");
  if (z.size(0) < 2) throw DataError("ridge probe: needs at least 2 training rows");
  const auto zd = z.to(torch::kFloat64).contiguous(), t = target.to(torch::kFloat64).contiguous();
  if (!torch::isfinite(zd).all().item<bool>() || !torch::isfinite(t).all().item<bool>())
    throw DataError("ridge probe: training embeddings or targets contain NaN or Inf");
  const std::int64_t n = zd.size(0), d = zd.size(1);
  const double* rows = zd.data_ptr<double>();  // (N, D)
  const double* y = t.data_ptr<double>();      // (N,)
  RidgeProbe probe;
  std::vector<double> mean(static_cast<std::size_t>(d), 0.0), inv_std(static_cast<std::size_t>(d), 0.0);
  double intercept = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < d; ++j) mean[j] += rows[i * d + j];
    intercept += y[i];
  }
  for (auto& m : mean) m /= static_cast<double>(n);
  intercept /= static_cast<double>(n);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) inv_std[j] += (rows[i * d + j] - mean[j]) * (rows[i * d + j] - mean[j]);
  for (auto& s : inv_std) s = 1.0 / std::max(std::sqrt(s / static_cast<double>(n)), 1e-6);
  // gram (D, D) = X^T X + l2 N I and rhs (D,) = X^T (y - mean y), X the standardised rows
  std::vector<double> gram(static_cast<std::size_t>(d * d), 0.0), rhs(static_cast<std::size_t>(d), 0.0), x(static_cast<std::size_t>(d));
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < d; ++j) x[j] = (rows[i * d + j] - mean[j]) * inv_std[j];
    const double r = y[i] - intercept;
    for (std::int64_t j = 0; j < d; ++j) {
      double* g = gram.data() + j * d;
      const double xj = x[j];
      for (std::int64_t k = j; k < d; ++k) g[k] += xj * x[k];
      rhs[j] += xj * r;
    }
  }
  for (std::int64_t j = 0; j < d; ++j) {
    gram[j * d + j] += l2 * static_cast<double>(n);
    for (std::int64_t k = 0; k < j; ++k) gram[j * d + k] = gram[k * d + j];
  }
  // l2 > 0: the system is positive definite, solved by Cholesky in the same fixed order. l2 = 0
  // with collinear columns (or a pivot lost to rounding): the least-norm solution (LAPACK).
  std::vector<double> w = rhs;
  bool solved = l2 > 0.0;
  std::vector<double> chol(gram);
  for (std::int64_t j = 0; j < d && solved; ++j) {
    for (std::int64_t k = 0; k <= j; ++k) {
      double s = chol[j * d + k];
      for (std::int64_t m = 0; m < k; ++m) s -= chol[j * d + m] * chol[k * d + m];
      if (k < j) {
        chol[j * d + k] = s / chol[k * d + k];
      } else if (s > 0.0) {
        chol[j * d + j] = std::sqrt(s);
      } else {
        solved = false;
      }
    }
  }
  if (solved) {
    for (std::int64_t j = 0; j < d; ++j) {  // L u = rhs
      for (std::int64_t m = 0; m < j; ++m) w[j] -= chol[j * d + m] * w[m];
      w[j] /= chol[j * d + j];
    }
    for (std::int64_t j = d - 1; j >= 0; --j) {  // L^T w = u
      for (std::int64_t m = j + 1; m < d; ++m) w[j] -= chol[m * d + j] * w[m];
      w[j] /= chol[j * d + j];
    }
    probe.weight_ = torch::tensor(w, torch::kFloat64);
  } else {
    const auto g = torch::tensor(gram, torch::kFloat64).reshape({d, d});
    probe.weight_ = std::get<0>(torch::linalg_lstsq(g, torch::tensor(rhs, torch::kFloat64).unsqueeze(1))).squeeze(1);
  }
  probe.mean_ = torch::tensor(mean, torch::kFloat64);
  probe.inv_std_ = torch::tensor(inv_std, torch::kFloat64);
  probe.intercept_ = intercept;
  return probe;
}

torch::Tensor RidgeProbe::predict(const torch::Tensor& z) const {
  torch::NoGradGuard no_grad;
  const auto zd = z.to(torch::kFloat64).contiguous();
  const auto mean = mean_.contiguous(), inv_std = inv_std_.contiguous(), weight = weight_.contiguous();
  const std::int64_t m = zd.size(0), d = zd.size(1);
  const double *rows = zd.data_ptr<double>(), *mu = mean.data_ptr<double>(), *s = inv_std.data_ptr<double>(),
               *w = weight.data_ptr<double>();
  auto out = torch::empty({m}, torch::kFloat64);
  double* p = out.data_ptr<double>();
  for (std::int64_t i = 0; i < m; ++i) {
    double v = 0.0;
    for (std::int64_t j = 0; j < d; ++j) v += (rows[i * d + j] - mu[j]) * s[j] * w[j];
    p[i] = v + intercept_;
  }
  return out;
}

}  // namespace dne::probe
