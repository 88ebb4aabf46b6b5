// Low-dimensional parametrisations of the noise: eps = B(theta) (dne.noise_basis, dne.noise_dim).
//
// An editor optimises coefficients theta; the FM sees eps = B(theta) (H, W). Every basis here is
// separable, B(theta) = s * L theta R^T with L (H, k), R (W, k) and theta (k, k):
//   pixel   theta is eps itself (L = I, R = I, s = 1): the editors as they always were, bit for bit;
//   lowres  theta is a k x k image upsampled bilinearly (PyTorch's align_corners = false), so the
//           rows of L and R are convex weights;
//   dct     theta holds the k x k lowest-frequency coefficients of the orthonormal 2-D DCT-II
//           (L, R: the first k DCT basis vectors as columns, L^T L = R^T R = I, so B^T B = s^2 I).
// The scale s = sqrt(H W / (||L||_F^2 ||R||_F^2)) makes a standard normal theta a noise of unit
// per-pixel RMS in expectation, so zo.sigma, zo.lr and dne.lr keep their per-pixel meaning
// in every basis (pixel: s = 1).
//
// The budget (dne.max_l2, dne.max_linf) holds for eps (to float rounding): in the lowres and dct
// bases `noise` applies it to B(theta) (scaled into the L2 ball, then clipped, differentiably for
// the white-box editor), whatever theta is. `project` keeps theta itself where the budget can be
// met in coefficient space: B is linear, so scaling theta by max_l2 / ||B(theta)|| is the exact
// L2 projection in every basis; in the lowres basis clipping theta to +-max_linf / s keeps every
// pixel inside the box (convex weights); the dct basis leaves the L-infinity clip to `noise`.
// The pixel basis is the editors as they were: `project` is project_noise and `noise` is theta
// itself, so a pixel theta is inside the budget where an editor projected it (after every
// update; every GeZO candidate), while the probe points theta +- sigma u of RGE, SPSA and NES
// are not projected in pixels (they are in the other bases).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "dne/config/config.hpp"

namespace dne::editing {

class NoiseBasis {
 public:
  /// kind: "pixel" | "lowres" | "dct"; k = dne.noise_dim (ignored by pixel; 1 <= k <= H, W).
  /// Unknown kinds or a bad k throw ConfigError naming the key.
  NoiseBasis(const std::string& kind, std::int64_t k, std::int64_t height, std::int64_t width,
             const torch::Device& device = torch::kCPU);
  /// The basis a config's dne section names, for (H, W) images, on `device`.
  static NoiseBasis from_options(const config::DneOptions& o, std::int64_t height, std::int64_t width,
                                 const torch::Device& device = torch::kCPU);

  const std::string& kind() const { return kind_; }
  bool is_pixel() const { return kind_ == "pixel"; }
  /// theta's shape: {H, W} for pixel, {k, k} otherwise.
  std::vector<std::int64_t> shape() const { return shape_; }
  /// Number of coefficients (the dimension a zeroth-order search explores).
  std::int64_t size() const { return shape_[0] * shape_[1]; }
  double scale() const { return scale_; }
  /// The unscaled factors L (H, k), R (W, k), float64 on the CPU (pixel: identities, made on
  /// request: the pixel basis holds no matrix).
  torch::Tensor left() const { return is_pixel() ? torch::eye(shape_[0], torch::kFloat64) : left64_; }
  torch::Tensor right() const { return is_pixel() ? torch::eye(shape_[1], torch::kFloat64) : right64_; }

  /// B(theta) (H, W) = s L theta R^T, differentiable; pixel: theta itself.
  torch::Tensor expand(const torch::Tensor& theta) const;
  /// The adjoint B^T(eps) = s L^T eps R (k, k); pixel: eps itself.
  torch::Tensor adjoint(const torch::Tensor& eps) const;
  /// theta with the budget applied where it is exact in coefficient space (see the file comment).
  torch::Tensor project(const torch::Tensor& theta, const config::DneOptions& o) const;
  /// The noise the FM sees: B(theta) scaled into the L2 ball and clipped to the L-infinity box,
  /// differentiable (gradient zero where a pixel is clipped). Pixel: theta itself (editors keep
  /// a pixel theta projected with `project`, which is project_noise).
  torch::Tensor noise(const torch::Tensor& theta, const config::DneOptions& o) const;

 private:
  std::string kind_;
  std::vector<std::int64_t> shape_;
  double scale_ = 1.0;
  torch::Tensor left64_, right64_;  // (H, k), (W, k) float64, CPU (for tests and the scale)
  torch::Tensor left_, right_;      // s^(1/2) L, s^(1/2) R, float32 on the device (the forward's)
};

/// Bilinear upsampling from k to n samples as an (n, k) matrix with PyTorch's align_corners =
/// false convention (source = (i + 0.5) k / n - 0.5, clamped at 0): row i holds the weights of
/// output i (non-negative, summing to 1).
torch::Tensor bilinear_upsampling_matrix(std::int64_t n, std::int64_t k);
/// The first k vectors of the orthonormal DCT-II of length n as the columns of an (n, k) matrix:
/// column u is alpha(u) cos(pi (2 i + 1) u / (2 n)), alpha(0) = sqrt(1/n), else sqrt(2/n).
torch::Tensor dct_matrix(std::int64_t n, std::int64_t k);

/// The control of a learned noise `like` (H, W) in `basis`: standard normal coefficients from
/// the stream (seed, kNoiseInit, 1, 0) expanded through the basis, then scaled to exactly
/// ||like||_2 inside the L-infinity bound as objective.hpp's norm_matched_noise does (which is
/// what the pixel basis gives, bit for bit): random noise with the learned one's norm and the
/// basis's spatial statistics.
torch::Tensor norm_matched_noise(const torch::Tensor& like, const config::DneOptions& options, std::uint64_t seed,
                                 const NoiseBasis& basis);

}  // namespace dne::editing
