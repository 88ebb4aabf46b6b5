// Linear probes (hand-solvable logistic regressions) and the DNE objective (hand-computed
// values), plus the white-box editor on a small linear "foundation model".
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "dne/core/errors.hpp"
#include "dne/editing/noise_editor.hpp"
#include "dne/editing/objective.hpp"
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

TEST(Objective, HandComputedValues) {
  // logits (0, ln 3), sa (1, 0): CE = (ln 2 + ln 4) / 2 = 1.0397208.
  // CE to 1/2: (ln 2 + (-(ln 0.75 + ln 0.25) / 2)) / 2 = (0.6931472 + 0.8369882) / 2 = 0.7650677.
  // ||eps|| of [[3, 4]] = 5.
  const auto logits = torch::tensor({0.0, std::log(3.0)}, torch::kFloat64);
  const auto sa = torch::tensor({1.0, 0.0}, torch::kFloat64);
  const auto noise = torch::tensor({{3.0, 4.0}}, torch::kFloat64);
  dne::config::DneOptions o;
  o.lambda_1 = 2.0;
  o.lambda = 0.1;
  o.objective = "neg_ce";
  auto t = dne::editing::dne_objective(logits, sa, noise, o);
  EXPECT_NEAR(t.sa_ce.item<double>(), 1.0397208, 1e-6);
  EXPECT_NEAR(t.noise_l2.item<double>(), 5.0, 1e-9);
  EXPECT_NEAR(t.loss.item<double>(), -2.0 * 1.0397208 + 0.5, 1e-6);
  o.objective = "confusion";
  EXPECT_NEAR(dne::editing::dne_objective(logits, sa, noise, o).loss.item<double>(),
              2.0 * 0.7650677 + 0.5, 1e-6);
  o.objective = "other";
  EXPECT_THROW(dne::editing::dne_objective(logits, sa, noise, o), dne::ConfigError);
}

TEST(Objective, GradientAtZeroNoiseIsFinite) {
  auto noise = torch::zeros({4, 4}, torch::requires_grad());
  dne::config::DneOptions o;
  auto t = dne::editing::dne_objective(torch::zeros({2}), torch::tensor({1.f, 0.f}), noise, o);
  t.loss.backward();
  EXPECT_TRUE(torch::isfinite(noise.grad()).all().item<bool>());
}

/// z = relu(flatten(x)): the smallest nonlinear stand-in for an FM. (With a linear FM a universal
/// additive noise only shifts the probe's logits and can never hide the attribute.)
class ReluModel : public dne::fm::DifferentiableModel {
 public:
  torch::Tensor forward(const torch::Tensor& x) override { return torch::relu(x.flatten(1)); }
  std::int64_t embed_dim() const override { return 16; }
  std::string describe() const override { return "relu"; }
  double flops_per_image() const override { return 16.0; }
  std::int64_t parameter_count() const override { return 0; }
};

TEST(WhiteboxEditor, ConfusionHidesAttributeFromFrozenProbe) {
  // Images 4x4; the attribute brightens pixel (0, 0). A linear probe finds it; white-box DNE with
  // the confusion objective must drive g's output on noised images to ~1/2: a negative noise at
  // (0, 0) puts both groups below the ReLU's kink, and noise elsewhere re-centres the logit.
  torch::manual_seed(0);
  const std::int64_t n = 200;
  auto sa = (torch::arange(n) % 2).to(torch::kFloat32);
  auto x = 0.1 * torch::rand({n, 1, 4, 4});
  x.select(2, 0).select(2, 0).add_(sa.unsqueeze(1));
  auto model = std::make_shared<ReluModel>();
  const auto z = model->forward(x);
  const auto g = LinearProbe::fit(z, sa.to(torch::kInt64), {});
  ASSERT_GT(((g.probability(z) >= 0.5).to(torch::kFloat32) == sa).to(torch::kFloat32).mean().item<double>(), 0.99);

  dne::config::DneOptions o;
  o.objective = "confusion";
  o.lambda = 0.0;
  o.epochs = 40;
  o.lr = 0.05;
  o.batch_size = 50;
  dne::editing::EditProblem problem{x, sa, &g, o, 3};
  const auto alone = dne::comm::make_self_communicator();
  const auto r = dne::editing::edit_whitebox(problem, *model, *alone);
  EXPECT_EQ(r.noise.sizes(), (std::vector<std::int64_t>{4, 4}));
  const auto& loss = r.trace.columns().at("loss");
  ASSERT_EQ(loss.size(), 160u);  // 40 epochs x 4 batches
  EXPECT_LT(loss.back(), loss.front());
  // CE to 1/2 is at least ln 2; the optimum reaches it when g outputs 1/2 for everyone.
  EXPECT_NEAR(loss.back(), std::log(2.0), 0.05);
  const auto p = g.probability(model->forward(x + r.noise));
  EXPECT_LT((p - 0.5).abs().max().item<double>(), 0.15);
  EXPECT_LT(r.noise[0][0].item<double>(), -0.5);
}

TEST(RandomEditor, HasRequestedNormAndIsDeterministic) {
  dne::config::DneOptions o;
  o.random_l2 = 3.0;
  dne::editing::EditProblem p{torch::zeros({2, 1, 8, 8}), torch::zeros({2}), nullptr, o, 5};
  const auto a = dne::editing::edit_random(p), b = dne::editing::edit_random(p);
  EXPECT_NEAR(a.noise.pow(2).sum().sqrt().item<double>(), 3.0, 1e-5);
  EXPECT_TRUE(torch::equal(a.noise, b.noise));
  p.seed = 6;
  EXPECT_FALSE(torch::equal(a.noise, dne::editing::edit_random(p).noise));
}

}  // namespace

// ---- The device-side forms (run.device = "cuda"): the same bits as the host formulas ----------

namespace device_forms {

using namespace dne;

TEST(Objective, TensorObjectiveValueHasTheDoubleOverloadsBits) {
  config::DneOptions o;
  o.lambda_1 = 0.7;
  o.lambda = 0.013;
  torch::manual_seed(5);
  const auto sums = torch::randn({50}, torch::kFloat64) * 30.0;
  const auto norms = torch::rand({50}) * 9.0f;  // float32, as l2() gives
  for (std::int64_t i = 0; i < 50; ++i) {
    const double s = sums[i].item<double>(), n = norms[i].item<double>();
    const double host = editing::objective_value(s, 17, n, o);
    const double device_form = editing::objective_value(sums[i], 17, norms[i], o).item<double>();
    EXPECT_EQ(host, device_form) << i;  // bit for bit
  }
}

TEST(Objective, OnCudaTheDeviceFormsKeepTheHostBits) {
  // CUDA divides by a host number as a multiplication by its reciprocal; editing::divide and the
  // tensor objective must not (run where LibTorch sees a GPU).
  if (!torch::cuda::is_available()) GTEST_SKIP() << "LibTorch sees no CUDA device (CPU build or no GPU)";
  config::DneOptions o;
  o.lambda_1 = 0.7;
  o.lambda = 0.013;
  torch::manual_seed(5);
  const auto sums = torch::randn({200}, torch::kFloat64) * 30.0;
  const auto norms = torch::rand({200}) * 9.0f;
  const auto on_gpu = [](const torch::Tensor& t) { return t.to(torch::kCUDA); };
  for (std::int64_t i = 0; i < 200; ++i) {
    const double host = editing::objective_value(sums[i].item<double>(), 17, norms[i].item<double>(), o);
    EXPECT_EQ(editing::objective_value(on_gpu(sums[i]), 17, on_gpu(norms[i]), o).item<double>(), host) << i;
    EXPECT_EQ(editing::divide(on_gpu(sums[i]), 0.3).item<double>(), sums[i].item<double>() / 0.3) << i;
  }
  config::DneOptions bounded;
  bounded.max_l2 = 0.5;
  const auto eps = torch::randn({16, 16});
  // The norm is a reduction in another order on the GPU: the projection agrees to float32 rounding.
  EXPECT_TRUE(torch::allclose(editing::project_noise(on_gpu(eps), bounded).cpu(), editing::project_noise(eps, bounded), 1e-6, 1e-7));
}

TEST(NoiseBudget, L2ProjectionHasTheHostFormulasBits) {
  // The projection no longer reads the norm back to the host; it must give exactly what
  // eps * float(max_l2 / norm) gives with the norm as a double, and eps itself inside the ball.
  config::DneOptions o;
  torch::manual_seed(6);
  for (const double bound : {0.5, 2.0, 7.3, 1e3}) {
    o.max_l2 = bound;
    const auto eps = torch::randn({16, 16});
    const double norm = eps.pow(2).sum().sqrt().item<double>();
    const auto expected = norm > bound ? eps * static_cast<float>(bound / norm) : eps;
    EXPECT_TRUE(torch::equal(editing::project_noise(eps, o), expected)) << bound;
  }
  EXPECT_TRUE(torch::equal(editing::project_noise(torch::zeros({4, 4}), o), torch::zeros({4, 4})));  // norm 0
}

TEST(EditorHelpers, ScalarsAndValuesComeBackAsDoubles) {
  const auto v = editing::scalars_to_host({torch::tensor(1.5f), torch::tensor(true), torch::tensor(-2.0, torch::kFloat64)});
  EXPECT_EQ(v, (std::vector<double>{1.5, 1.0, -2.0}));
  EXPECT_TRUE(editing::scalars_to_host({}).empty());
  EXPECT_EQ(editing::values_to_host(torch::tensor({{1.0f, 2.0f}, {3.0f, 4.0f}})), (std::vector<double>{1, 2, 3, 4}));
}

TEST(LinearProbe, MovedProbeGivesTheSameLogits) {
  torch::manual_seed(8);
  const auto z = torch::randn({60, 3});
  const auto y = (z.select(1, 0) > 0).to(torch::kInt64);
  const auto g = probe::LinearProbe::fit(z, y, config::ProbeOptions{});
  EXPECT_TRUE(torch::equal(g.to(torch::kCPU).logits(z), g.logits(z)));
}

}  // namespace device_forms
