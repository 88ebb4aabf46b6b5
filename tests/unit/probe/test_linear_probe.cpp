// Linear probes (hand-solvable logistic regressions) and the ridge probe (hand-computed and
// against LAPACK on the normal equations).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "dne/config/config.hpp"
#include "dne/core/errors.hpp"
#include "dne/probe/linear_probe.hpp"

namespace {

using dne::probe::LinearProbe;

/// 1-D data: z = +1 (y = 1 for 3 of 4) and z = -1 (y = 1 for 1 of 4). Standardised x = z.
void noisy_1d(torch::Tensor& z, torch::Tensor& y) {
  z = torch::tensor({1.f, 1.f, 1.f, 1.f, -1.f, -1.f, -1.f, -1.f}).reshape({8, 1});
  y = torch::tensor({1, 1, 1, 0, 0, 0, 0, 1});
}

TEST(LinearProbe, UnregularisedOptimumIsLogOdds) {
  // By symmetry b = 0; the loss 3/4 log(1+e^-w) + 1/4 log(1+e^w) is minimal at sigmoid(w) = 3/4,
  // i.e. w = ln 3.
  torch::Tensor z, y;
  noisy_1d(z, y);
  dne::config::ProbeOptions o;
  o.l2 = 0.0;
  const auto p = LinearProbe::fit(z, y, o);
  EXPECT_NEAR(p.weight()[0].item<double>(), std::log(3.0), 1e-4);
  EXPECT_NEAR(p.bias(), 0.0, 1e-5);
  EXPECT_NEAR(p.probability(torch::tensor({{1.f}}))[0].item<double>(), 0.75, 1e-4);
}

TEST(LinearProbe, L2OptimumMatchesBisection) {
  // Stationarity: sigmoid(w) - 3/4 + l2 * w = 0; solved here by bisection, independently.
  torch::Tensor z, y;
  noisy_1d(z, y);
  dne::config::ProbeOptions o;
  o.l2 = 0.1;
  double lo = 0, hi = 2;
  for (int i = 0; i < 100; ++i) {
    const double mid = 0.5 * (lo + hi);
    (1.0 / (1.0 + std::exp(-mid)) - 0.75 + 0.1 * mid > 0 ? hi : lo) = mid;
  }
  EXPECT_NEAR(LinearProbe::fit(z, y, o).weight()[0].item<double>(), lo, 1e-4);
}

TEST(LinearProbe, SeparableDataIsClassifiedPerfectly) {
  // Column 2 is +-(0.5 + U[0,1)) by class: a margin of 1 around zero.
  torch::manual_seed(1);
  auto z = torch::randn({200, 5});
  const auto y = (torch::arange(200) % 2).to(torch::kInt64);
  z.select(1, 2).copy_((2 * y - 1).to(torch::kFloat32) * (0.5 + torch::rand({200})));
  const auto p = LinearProbe::fit(z, y, {});
  EXPECT_TRUE(torch::equal((p.probability(z) >= 0.5).to(torch::kInt64), y));
}

TEST(LinearProbe, SingleClassAndNaNAreDataErrors) {
  dne::config::ProbeOptions o;
  EXPECT_THROW(LinearProbe::fit(torch::randn({10, 3}), torch::ones({10}), o), dne::DataError);
  auto z = torch::randn({10, 3});
  z[4][1] = std::nan("");
  EXPECT_THROW(LinearProbe::fit(z, torch::tensor({0, 1, 0, 1, 0, 1, 0, 1, 0, 1}), o), dne::DataError);
}

TEST(RidgeProbe, HandComputedOneDimensionalSolution) {
  // z = 0, 1, 2 (mean 1, population std sqrt(2/3)), t = 1, 3, 2. Standardised x = (z - 1) / s:
  // x^T x = 2 / s^2 = 3, x^T (t - 2) = (-1 * -1 + 1 * 0) / s = 1 / s. With l2: w = (1/s) / (3 + 3 l2),
  // prediction at z: 2 + w (z - 1) / s = 2 + (z - 1) / (2 (1 + l2)) after s^2 = 2/3.
  const auto z = torch::tensor({0.0F, 1.0F, 2.0F}).unsqueeze(1);
  const auto t = torch::tensor({1.0F, 3.0F, 2.0F});
  for (const double l2 : {0.0, 0.5}) {
    const auto p = dne::probe::RidgeProbe::fit(z, t, l2).predict(torch::tensor({0.0F, 4.0F}).unsqueeze(1));
    EXPECT_NEAR(p[0].item<double>(), 2.0 - 1.0 / (2.0 * (1.0 + l2)), 1e-9) << "l2 " << l2;
    EXPECT_NEAR(p[1].item<double>(), 2.0 + 3.0 / (2.0 * (1.0 + l2)), 1e-9) << "l2 " << l2;
  }
  EXPECT_THROW(dne::probe::RidgeProbe::fit(torch::tensor({1.0F, std::nanf("")}).unsqueeze(1), torch::tensor({1.0F, 2.0F}), 0.1),
               dne::DataError);
}

TEST(RidgeProbe, AgreesWithTheNormalEquationsSolvedByLapack) {
  // An independent solution: the standardised normal equations built with Torch ops and solved
  // by torch::linalg_solve; the probe sums in its own loops.
  auto gen = at::detail::createCPUGenerator(7);
  const auto z = torch::randn({200, 6}, gen, torch::kFloat64);
  const auto t = torch::randn({200}, gen, torch::kFloat64) + z.select(1, 2) * 3.0;
  const double l2 = 0.01;
  const auto mean = z.mean(0), std = z.std(0, /*unbiased=*/false);
  const auto x = (z - mean) / std;
  const auto w = torch::linalg_solve(torch::mm(x.t(), x) + l2 * 200.0 * torch::eye(6, torch::kFloat64),
                                     torch::mv(x.t(), t - t.mean()));
  const auto q = torch::randn({20, 6}, gen, torch::kFloat64);
  const auto expected = torch::mv((q - mean) / std, w) + t.mean();
  EXPECT_TRUE(torch::allclose(dne::probe::RidgeProbe::fit(z, t, l2).predict(q), expected, 1e-10, 1e-10));
}

TEST(RidgeProbe, SameBitsWhereverTheRowsLie) {
  // The same rows at another offset of a buffer (8 bytes off every vector boundary) give the same
  // bits: the sums do not depend on alignment (OpenBLAS's did: age_leakage_r2 moved run to run).
  auto gen = at::detail::createCPUGenerator(3);
  const auto z = torch::randn({101, 8}, gen, torch::kFloat64);
  const auto t = torch::randn({101}, gen, torch::kFloat64);
  auto shifted = torch::empty({101 * 8 + 1}, torch::kFloat64);
  shifted.narrow(0, 1, 101 * 8).copy_(z.reshape({-1}));
  const auto z2 = shifted.narrow(0, 1, 101 * 8).view({101, 8});
  ASSERT_NE(z.data_ptr<double>(), z2.data_ptr<double>());
  const auto a = dne::probe::RidgeProbe::fit(z, t, 0.001).predict(z);
  const auto b = dne::probe::RidgeProbe::fit(z2, t, 0.001).predict(z2);
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(RidgeProbe, CollinearColumnsWithoutPenaltyGiveTheLeastNormSolution) {
  // Column 1 = 2 x column 0: l2 = 0 has no unique solution; the least-norm one predicts t exactly
  // when t is linear in the column.
  const auto c = torch::tensor({0.0, 1.0, 2.0, 3.0}, torch::kFloat64);
  const auto z = torch::stack({c, 2.0 * c}, 1);
  const auto t = 1.0 + 0.5 * c;
  const auto p = dne::probe::RidgeProbe::fit(z, t, 0.0).predict(z);
  EXPECT_TRUE(torch::allclose(p, t, 1e-9, 1e-9));
}

TEST(LinearProbe, MovedProbeGivesTheSameLogits) {
  torch::manual_seed(8);
  const auto z = torch::randn({60, 3});
  const auto y = (z.select(1, 0) > 0).to(torch::kInt64);
  const auto g = LinearProbe::fit(z, y, dne::config::ProbeOptions{});
  EXPECT_TRUE(torch::equal(g.to(torch::kCPU).logits(z), g.logits(z)));
}

}  // namespace
