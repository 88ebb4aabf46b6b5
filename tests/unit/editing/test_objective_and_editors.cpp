// The DNE objective (hand-computed values; the tensor and device forms against the double
// overloads' bits), the noise budget, and the white-box and random editors on a small stand-in FM.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "dne/core/errors.hpp"
#include "dne/editing/noise_editor.hpp"
#include "dne/editing/objective.hpp"
#include "dne/probe/linear_probe.hpp"

namespace {

using dne::probe::LinearProbe;

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

}  // namespace device_forms
