// The DNE objective on one batch.
//
//   neg_ce:     L(eps) = -lambda_1 * CE(g(phi(x + eps)), a) + lambda * ||eps||_2   (the paper's)
//   confusion:  L(eps) =  lambda_1 * CE(g(phi(x + eps)), 1/2) + lambda * ||eps||_2
// CE is the mean binary cross-entropy; CE to 1/2 is minimised when g outputs 1/2, i.e. the
// attribute is hidden rather than flipped.
#pragma once

#include <torch/torch.h>

#include "dne/config/config.hpp"

namespace dne::editing {

struct ObjectiveTerms {
  torch::Tensor loss;      // scalar, the value minimised
  torch::Tensor sa_ce;     // scalar, CE(g(.), a) (for the trace)
  torch::Tensor noise_l2;  // scalar, ||eps||_2
};

/// The noise budget, applied in this one place by every editor: `eps` (H, W) scaled into the L2
/// ball of radius dne.max_l2 (when > 0), then clipped to [-dne.max_linf, dne.max_linf] (when
/// > 0). Clipping only shrinks the norm, so the result lies in both sets. No bound: `eps` itself.
torch::Tensor project_noise(const torch::Tensor& eps, const config::DneOptions& options);

/// The control of a learned noise `like` (H, W): i.i.d. Gaussian noise from the stream
/// (seed, kNoiseInit, 1, 0), scaled to exactly ||like||_2 and, when dne.max_linf > 0, clipped to
/// that bound with the scale found by bisection so that the clipped noise still has the norm
/// (exact whenever the bound allows it, i.e. up to max_linf * sqrt(pixels)). Zero gives zero.
torch::Tensor norm_matched_noise(const torch::Tensor& like, const config::DneOptions& options, std::uint64_t seed);

/// `raw` (H, W) scaled to the L2 norm of `like` (H, W) and clipped to dne.max_linf, the scale
/// found by bisection as norm_matched_noise describes; float32 on the host. Zero `like` gives zero.
torch::Tensor scaled_to_norm(const torch::Tensor& raw, const torch::Tensor& like, const config::DneOptions& options);

/// Images (B, 1, H, W) with the noise (H, W) added, clamped to [0, 1] when dne.clip_images
/// (differentiable: the gradient is zero where a pixel is clamped).
torch::Tensor add_noise(const torch::Tensor& images, const torch::Tensor& eps, const config::DneOptions& options);

/// The SA term of each image: neg_ce: -CE(g_i, a_i); confusion: CE(g_i, 1/2).
/// sa_logits (B,), sa (B,) float 0/1 -> (B,). Unknown objectives throw ConfigError.
torch::Tensor sa_term_per_image(const torch::Tensor& sa_logits, const torch::Tensor& sa, const std::string& objective);

/// The loss from its parts: lambda_1 * sa_term_sum / batch + lambda * noise_l2. The zeroth-order
/// editors, which sum SA terms over a rank group, assemble their losses with this one formula.
double objective_value(double sa_term_sum, std::int64_t batch, double noise_l2, const config::DneOptions& options);
/// `t / d` as a true division on any device: CUDA divides by a host number as a multiplication
/// by its reciprocal (one bit off at times), so the divisor goes over as a 0-dim tensor.
torch::Tensor divide(const torch::Tensor& t, double d);

/// The same formula on 0-dim tensors (sa_term_sum float64, noise_l2 float32 or float64) on any
/// device: a float64 0-dim tensor with the bits the double overload gives.
torch::Tensor objective_value(const torch::Tensor& sa_term_sum, std::int64_t batch, const torch::Tensor& noise_l2,
                              const config::DneOptions& options);

/// sa_logits (B,), sa (B,) float 0/1, noise (H, W).
ObjectiveTerms dne_objective(const torch::Tensor& sa_logits, const torch::Tensor& sa,
                             const torch::Tensor& noise, const config::DneOptions& options);

}  // namespace dne::editing
