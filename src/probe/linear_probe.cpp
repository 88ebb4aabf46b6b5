// Logistic probes fitted with L-BFGS (see linear_probe.hpp).
#include "dne/probe/linear_probe.hpp"

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

RidgeProbe RidgeProbe::fit(const torch::Tensor& z, const torch::Tensor& target, double l2) {
  TORCH_CHECK(z.dim() == 2 && target.dim() == 1 && z.size(0) == target.size(0),
              "ridge probe: z must be (N, D) and target (N,)");
  if (z.size(0) < 2) throw DataError("ridge probe: needs at least 2 training rows");
  const auto zd = z.to(torch::kFloat64), t = target.to(torch::kFloat64);
  if (!torch::isfinite(zd).all().item<bool>() || !torch::isfinite(t).all().item<bool>())
    throw DataError("ridge probe: training embeddings or targets contain NaN or Inf");
  RidgeProbe probe;
  probe.mean_ = zd.mean(0);
  probe.inv_std_ = 1.0 / zd.std(0, /*unbiased=*/false).clamp_min(1e-6);
  const auto x = (zd - probe.mean_) * probe.inv_std_;  // (N, D)
  probe.intercept_ = t.mean().item<double>();
  const auto n = static_cast<double>(z.size(0));
  const auto gram = torch::mm(x.t(), x) + l2 * n * torch::eye(z.size(1), torch::kFloat64);
  // l2 = 0 with collinear columns: the least-norm solution rather than a failure
  probe.weight_ = std::get<0>(torch::linalg_lstsq(gram, torch::mv(x.t(), t - probe.intercept_).unsqueeze(1))).squeeze(1);
  return probe;
}

torch::Tensor RidgeProbe::predict(const torch::Tensor& z) const {
  torch::NoGradGuard no_grad;
  return torch::mv((z.to(torch::kFloat64) - mean_) * inv_std_, weight_) + intercept_;
}

}  // namespace dne::probe
