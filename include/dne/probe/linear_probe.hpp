// Linear logistic probes on embeddings: the frozen SA probe g, the disease probe and the fresh
// "attack" SA probe that measures leakage; and a ridge-regression probe, the attack on a
// continuous attribute such as age.
//
// A probe standardises its inputs with the training mean and standard deviation, then applies
// w . z + b. Fitting is full-batch L-BFGS (strong Wolfe) on the mean logistic loss plus
// (l2 / 2) ||w||^2 from a zero start: deterministic, no random draws, no hyper-parameter beyond l2.
#pragma once

#include <torch/torch.h>

#include "dne/config/config.hpp"

namespace dne::probe {

class LinearProbe {
 public:
  /// z (N, D) float32 on any device (the probe lives there), target (N,) with values 0/1 (any dtype). Throws DataError if a class is
  /// missing or the embeddings are not finite.
  static LinearProbe fit(const torch::Tensor& z, const torch::Tensor& target,
                         const config::ProbeOptions& options);

  /// The same probe with its tensors on `device` (fitting runs where z is).
  LinearProbe to(const torch::Device& device) const;

  /// z (N, D) -> logits (N,) on z's device (the probe's); differentiable with respect to z (the probe's own weights are frozen).
  torch::Tensor logits(const torch::Tensor& z) const;
  /// z (N, D) -> P(class 1) (N,), no grad.
  torch::Tensor probability(const torch::Tensor& z) const;

  const torch::Tensor& weight() const { return weight_; }
  double bias() const { return bias_; }
  /// Final training loss (mean logistic loss + penalty).
  double train_loss() const { return train_loss_; }

 private:
  torch::Tensor mean_, inv_std_, weight_;  // (D,), (D,), (D,)
  double bias_ = 0.0;
  double train_loss_ = 0.0;
};

/// Ridge regression on standardised embeddings: w = (X^T X + l2 N I)^-1 X^T (t - mean t), solved
/// in float64 (closed form, deterministic). The fresh probe that tries to recover a continuous
/// attribute (age) from debiased embeddings.
class RidgeProbe {
 public:
  /// z (N, D), target (N,) real values. Throws DataError for non-finite inputs or N < 2.
  static RidgeProbe fit(const torch::Tensor& z, const torch::Tensor& target, double l2);
  /// z (M, D) -> predictions (M,) float64, no grad.
  torch::Tensor predict(const torch::Tensor& z) const;

 private:
  torch::Tensor mean_, inv_std_, weight_;  // (D,) float64 each
  double intercept_ = 0.0;
};

}  // namespace dne::probe
