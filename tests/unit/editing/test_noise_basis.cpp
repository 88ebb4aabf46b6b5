// Noise bases (pixel, lowres, dct) against hand-computed cases and an independent implementation
// (Torch's own bilinear interpolation), the budget in every basis, and the NES estimator: its
// fitness shaping by hand and its gradient estimate on a quadratic.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "dne/comm/communicator.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/random.hpp"
#include "dne/editing/noise_basis.hpp"
#include "dne/editing/noise_editor.hpp"
#include "dne/editing/objective.hpp"
#include "dne/editing/zeroth_order.hpp"
#include "dne/probe/linear_probe.hpp"

namespace {

using namespace dne;
using editing::NoiseBasis;

/// Standard normal (rows, cols) float32 from a counter stream (not Torch's global generator).
torch::Tensor normal(std::int64_t rows, std::int64_t cols, std::uint32_t index) {
  std::vector<float> v(static_cast<std::size_t>(rows * cols));
  CounterStream s(5, StreamPurpose::kPerturbation, 77, index);
  s.fill_normal(v.data(), v.size());
  return torch::from_blob(v.data(), {rows, cols}, torch::kFloat32).clone();
}

double dot64(const torch::Tensor& a, const torch::Tensor& b) { return (a.to(torch::kFloat64) * b.to(torch::kFloat64)).sum().item<double>(); }

TEST(NoiseBasis, BilinearMatrixByHand) {
  // n = 4 from k = 2: sources (i + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped at the edge).
  const auto m = editing::bilinear_upsampling_matrix(4, 2);
  const auto expected = torch::tensor({1.0, 0.0, 0.75, 0.25, 0.25, 0.75, 0.0, 1.0}, torch::kFloat64).reshape({4, 2});
  EXPECT_TRUE(torch::allclose(m, expected, 0.0, 1e-15)) << m;
}

TEST(NoiseBasis, LowresIsTorchBilinearUpsampling) {
  // An independent implementation: torch's interpolate (align_corners = false) of theta (1, 1, k, k).
  for (const std::int64_t k : {3, 8, 16}) {
    const NoiseBasis b("lowres", k, 64, 48);
    const auto theta = normal(k, k, static_cast<std::uint32_t>(k));
    const auto torch_up = torch::nn::functional::interpolate(
        theta.view({1, 1, k, k}),
        torch::nn::functional::InterpolateFuncOptions().size(std::vector<std::int64_t>{64, 48}).mode(torch::kBilinear).align_corners(false));
    EXPECT_TRUE(torch::allclose(b.expand(theta), b.scale() * torch_up.view({64, 48}), 1e-5, 1e-5)) << k;
  }
}

TEST(NoiseBasis, DctByHandAndOrthonormal) {
  // n = 2: the Haar-like pair (1, 1) / sqrt 2, (1, -1) / sqrt 2 as columns.
  const double r = 1.0 / std::sqrt(2.0);
  EXPECT_TRUE(torch::allclose(editing::dct_matrix(2, 2), torch::tensor({r, r, r, -r}, torch::kFloat64).reshape({2, 2}), 0.0, 1e-15));
  // n = 4, column 1: sqrt(2/4) cos(pi (2i + 1) / 8).
  const auto m = editing::dct_matrix(4, 3);
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(m[i][1].item<double>(), std::sqrt(0.5) * std::cos(M_PI * (2 * i + 1) / 8.0), 1e-15);
  // B^T B = I: orthonormal columns of L and R, so the unscaled 2-D basis is orthonormal too.
  const NoiseBasis b("dct", 8, 64, 32);
  EXPECT_TRUE(torch::allclose(b.left().t().mm(b.left()), torch::eye(8, torch::kFloat64), 0.0, 1e-12));
  EXPECT_TRUE(torch::allclose(b.right().t().mm(b.right()), torch::eye(8, torch::kFloat64), 0.0, 1e-12));
  const auto theta = normal(8, 8, 1);
  EXPECT_TRUE(torch::allclose(b.adjoint(b.expand(theta)), b.scale() * b.scale() * theta, 1e-4, 1e-4));
  // Orthonormal up to the scale: ||B theta|| = s ||theta||.
  EXPECT_NEAR(b.expand(theta).norm().item<double>(), b.scale() * theta.norm().item<double>(), 1e-3);
}

TEST(NoiseBasis, AdjointSatisfiesTheInnerProductIdentity) {
  for (const char* kind : {"lowres", "dct"}) {
    const NoiseBasis b(kind, 6, 40, 24);
    const auto x = normal(6, 6, 2), y = normal(40, 24, 3);
    const double left = dot64(b.expand(x), y), right = dot64(x, b.adjoint(y));
    EXPECT_NEAR(left, right, 1e-4 * std::abs(left) + 1e-4) << kind;  // <B x, y> = <x, B^T y>
  }
}

TEST(NoiseBasis, ScaleGivesUnitPerPixelVarianceAndPixelIsTheIdentity) {
  for (const char* kind : {"lowres", "dct"}) {
    const NoiseBasis b(kind, 8, 64, 64);
    const double fro2 = b.left().pow(2).sum().item<double>() * b.right().pow(2).sum().item<double>();
    EXPECT_NEAR(b.scale() * b.scale() * fro2, 64.0 * 64.0, 1e-6) << kind;  // E ||s B u||^2 = H W
    EXPECT_EQ(b.shape(), (std::vector<std::int64_t>{8, 8}));
    EXPECT_EQ(b.size(), 64);
  }
  EXPECT_NEAR(NoiseBasis("dct", 8, 64, 64).scale(), 8.0, 1e-12);  // sqrt(4096 / 64)
  const NoiseBasis pixel("pixel", 8, 64, 48);
  EXPECT_EQ(pixel.shape(), (std::vector<std::int64_t>{64, 48}));
  const auto eps = normal(64, 48, 4);
  EXPECT_TRUE(pixel.expand(eps).is_same(eps));
  config::DneOptions o;
  o.max_linf = 0.5;
  EXPECT_TRUE(torch::equal(pixel.project(eps, o), editing::project_noise(eps, o)));
  EXPECT_TRUE(pixel.noise(eps, o).is_same(eps));
}

TEST(NoiseBasis, BadKindOrDimensionIsAConfigError) {
  EXPECT_THROW(NoiseBasis("wavelet", 8, 64, 64), ConfigError);
  EXPECT_THROW(NoiseBasis("dct", 0, 64, 64), ConfigError);
  EXPECT_THROW(NoiseBasis("lowres", 65, 64, 64), ConfigError);
}

TEST(NoiseBasis, TheBudgetHoldsExactlyForTheNoiseInEveryBasis) {
  for (const char* kind : {"lowres", "dct"})
    for (const bool linf : {true, false}) {
      config::DneOptions o;
      (linf ? o.max_linf : o.max_l2) = linf ? 0.05 : 0.5;
      const NoiseBasis b(kind, 8, 32, 32);
      const auto theta = b.project(3.0 * normal(8, 8, 6), o);
      const auto eps = b.noise(theta, o);
      if (linf) {
        EXPECT_LE(eps.abs().max().item<double>(), 0.05 + 1e-7) << kind;
        EXPECT_GT(eps.abs().max().item<double>(), 0.04) << kind;  // binding
        if (std::string(kind) == "lowres") {  // clipping theta already keeps every pixel inside
          EXPECT_LE(b.expand(theta).abs().max().item<double>(), 0.05 + 1e-7);
        }
      } else {
        EXPECT_NEAR(eps.norm().item<double>(), 0.5, 1e-5) << kind;  // the exact projection by scaling
        EXPECT_NEAR(b.expand(theta).norm().item<double>(), 0.5, 1e-5) << kind;
      }
    }
}

TEST(NoiseBasis, NormMatchedControlInTheBasis) {
  config::DneOptions o;
  o.max_linf = 0.05;
  const NoiseBasis b("lowres", 4, 32, 32), pixel("pixel", 4, 32, 32);
  const auto like = 0.02 * normal(32, 32, 7);
  const auto control = editing::norm_matched_noise(like, o, 3, b);
  EXPECT_NEAR(control.norm().item<double>(), like.norm().item<double>(), 1e-5);
  EXPECT_LE(control.abs().max().item<double>(), 0.05 + 1e-9);
  // Smooth: a 4 x 4 bilinear image varies little between neighbouring pixels (white noise would not).
  const double step = (control.slice(1, 1) - control.slice(1, 0, -1)).abs().mean().item<double>();
  EXPECT_LT(step, 0.2 * control.abs().mean().item<double>());
  // The pixel basis gives objective.hpp's control bit for bit.
  EXPECT_TRUE(torch::equal(editing::norm_matched_noise(like, o, 3, pixel), editing::norm_matched_noise(like, o, 3)));
}

TEST(Nes, CentredRanksByHand) {
  // Losses 3, 1, 2, 2: ranks 3, 0, 1.5, 1.5 (ties share their mean) -> / 3 - 1/2.
  const auto w = editing::nes_weights({3.0, 1.0, 2.0, 2.0}, "rank");
  ASSERT_EQ(w.size(), 4u);
  EXPECT_DOUBLE_EQ(w[0], 0.5);
  EXPECT_DOUBLE_EQ(w[1], -0.5);
  EXPECT_DOUBLE_EQ(w[2], 0.0);
  EXPECT_DOUBLE_EQ(w[3], 0.0);
  const double inf = std::numeric_limits<double>::infinity();
  const auto with_inf = editing::nes_weights({inf, 0.0, 5.0}, "rank");  // an infinite loss is just the worst
  EXPECT_DOUBLE_EQ(with_inf[0], 0.5);
  EXPECT_DOUBLE_EQ(with_inf[1], -0.5);
  EXPECT_DOUBLE_EQ(with_inf[2], 0.0);
  const auto with_nan = editing::nes_weights({0.0, std::nan(""), 5.0}, "rank");  // NaN: the worst, as +infinity
  EXPECT_DOUBLE_EQ(with_nan[0], -0.5);
  EXPECT_DOUBLE_EQ(with_nan[1], 0.5);
  EXPECT_DOUBLE_EQ(with_nan[2], 0.0);
  EXPECT_EQ(editing::nes_weights({1.0, 2.0}, "none"), (std::vector<double>{1.0, 2.0}));
  EXPECT_THROW(editing::nes_weights({1.0, 2.0}, "fitness"), ConfigError);
}

TEST(Nes, GradientEstimateOnAQuadraticPointsAlongTheTrueGradient) {
  // f(theta) = 1/2 sum_i h_i (theta_i - c_i)^2 in d = 64 dimensions, an ill-conditioned quadratic;
  // the true gradient is h * (theta - c). With q = 2000 antithetic pairs both shapings align with it.
  const std::int64_t d = 64, q = 2000;
  const double sigma = 1e-3;
  const auto h = torch::linspace(0.5, 4.0, d, torch::kFloat64);
  const auto c = normal(1, d, 9).to(torch::kFloat64).view({d});
  const auto theta = torch::zeros({d}, torch::kFloat64);
  const auto f = [&](const torch::Tensor& t) { return 0.5 * (h * (t - c).pow(2)).sum().item<double>(); };
  std::vector<torch::Tensor> dirs;
  std::vector<double> losses;
  for (std::int64_t k = 0; k < q; ++k) {
    dirs.push_back(normal(1, d, static_cast<std::uint32_t>(100 + k)).view({d}));
    losses.push_back(f(theta + sigma * dirs.back().to(torch::kFloat64)));
    losses.push_back(f(theta - sigma * dirs.back().to(torch::kFloat64)));
  }
  const auto truth = (h * (theta - c)).to(torch::kFloat32);
  for (const char* shaping : {"rank", "none"}) {
    const auto g = editing::nes_gradient(losses, dirs, sigma, shaping);
    const double cosine = dot64(g, truth) / (g.norm().item<double>() * truth.norm().item<double>());
    EXPECT_GT(cosine, 0.9) << shaping;
  }
  // Without shaping it is the two-point estimate: for small sigma its scale matches the gradient's too.
  const auto raw = editing::nes_gradient(losses, dirs, sigma, "none");
  EXPECT_NEAR(raw.norm().item<double>() / truth.norm().item<double>(), 1.0, 0.15);
  // A few directions only: the estimate is still a descent direction on average, not aligned.
  std::vector<torch::Tensor> few(dirs.begin(), dirs.begin() + 4);
  const auto g4 = editing::nes_gradient(std::vector<double>(losses.begin(), losses.begin() + 8), few, sigma, "rank");
  EXPECT_LT(dot64(g4, truth) / (g4.norm().item<double>() * truth.norm().item<double>()), 0.9);
}

}  // namespace
