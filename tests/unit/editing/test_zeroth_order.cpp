// Zeroth-order editors (GeZO, RGE, SPSA) on a known objective: the "FM" is z = relu(flatten(x))
// on 8x8 images whose attribute brightens pixel (0, 0); the confusion loss starts well above its
// optimum log 2, which a noise reaches by pushing pixel (0, 0) below the ReLU's kink. (With a
// linear FM a universal noise only shifts the probe's logit, and eps = 0 is already near-optimal.)
// Checks the properties docs/gezo.md promises.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "dne/comm/communicator.hpp"
#include "dne/core/errors.hpp"
#include "dne/editing/noise_basis.hpp"
#include "dne/editing/noise_editor.hpp"
#include "dne/editing/objective.hpp"
#include "dne/editing/zeroth_order.hpp"
#include "dne/experiment/method_registry.hpp"
#include "dne/probe/linear_probe.hpp"

namespace {

using namespace dne;

/// z = relu(flatten(x)): (B, 1, 8, 8) -> (B, 64).
class ReluFm : public fm::DifferentiableModel {
 public:
  torch::Tensor forward(const torch::Tensor& x) override { return torch::relu(x.flatten(1)); }
  std::int64_t embed_dim() const override { return 64; }
  std::string describe() const override { return "relu"; }
  double flops_per_image() const override { return 64; }
  std::int64_t parameter_count() const override { return 0; }
};

struct Fixture {
  std::shared_ptr<ReluFm> model = std::make_shared<ReluFm>();
  torch::Tensor x, sa;
  probe::LinearProbe g;
  Fixture() {
    torch::manual_seed(3);
    x = 0.1 * torch::rand({40, 1, 8, 8});
    sa = (torch::arange(40) % 2).to(torch::kFloat32);
    x.select(2, 0).select(2, 0).add_(sa.unsqueeze(1));  // attribute brightens pixel (0, 0)
    torch::NoGradGuard ng;
    g = probe::LinearProbe::fit(model->forward(x), sa.to(torch::kInt64), {});
  }
  editing::EditProblem problem(std::int64_t batch, std::int64_t epochs) const {
    config::DneOptions o;
    o.objective = "confusion";
    o.lambda = 0.0;
    o.batch_size = batch;
    o.epochs = epochs;
    editing::EditProblem p{x, sa, &g, o, 11};
    p.zo.candidates = 6;
    p.zo.local_epochs = 5;
    p.zo.sigma = 0.1;
    p.zo.momentum = 0.5;
    return p;
  }
};

// `const char*`, not `const std::string&`: a temporary string argument makes GCC 13 warn
// -Wdangling-reference on every `const auto& x = col(r, "...")` (a false positive, fatal with -Werror).
const std::vector<double>& col(const editing::EditResult& r, const char* name) {
  return r.trace.columns().at(name);
}

TEST(Gezo, AcceptedStepsDecreaseTheLossAndLossCarriesOverWithinABatch) {
  Fixture f;
  auto self = comm::make_self_communicator();
  fm::EmbeddingApi api(f.model);
  const auto r = editing::edit_gezo(f.problem(40, 4), api, *self);  // one batch, 4 epochs x 5 local
  const auto &loss = col(r, "loss"), &after = col(r, "loss_after"), &acc = col(r, "accepted");
  const auto& local = col(r, "local");
  ASSERT_EQ(loss.size(), 20u);
  int accepted = 0;
  for (std::size_t i = 0; i < loss.size(); ++i) {
    if (acc[i] > 0) {
      EXPECT_LT(after[i], loss[i]) << i;
      ++accepted;
    } else {
      EXPECT_EQ(after[i], loss[i]) << i;
    }
    if (i > 0 && local[i] > 0) {
      EXPECT_EQ(loss[i], after[i - 1]) << i;  // same batch: no re-evaluation
    }
  }
  EXPECT_GE(accepted, 5);
  EXPECT_LT(after.back(), loss.front());
}

TEST(Gezo, SaAccuracyTraceFollowsTheAcceptedNoise) {
  Fixture f;
  auto self = comm::make_self_communicator();
  fm::EmbeddingApi api(f.model);
  auto p = f.problem(40, 4);  // one batch: every row is on the whole set
  const auto r = editing::edit_gezo(p, api, *self);
  const auto &before = col(r, "sa_accuracy"), &after = col(r, "sa_accuracy_after");
  const auto &acc = col(r, "accepted"), &local = col(r, "local");
  bool changed = false;
  for (std::size_t i = 1; i < before.size(); ++i) {
    if (local[i] > 0) {
      EXPECT_EQ(before[i], after[i - 1]) << i;  // refreshed after an accepted step
    }
    if (acc[i] == 0) {
      EXPECT_EQ(after[i], before[i]) << i;
    }
    changed |= after[i] != before[0];
  }
  EXPECT_TRUE(changed) << "the trace never moved: the attribute was hidden at eps = 0?";
  // The last value is g's accuracy at the final noise, computed here independently.
  torch::NoGradGuard ng;
  const auto logits = f.g.logits(f.model->forward(f.x + r.noise));
  const double expected = ((logits > 0).to(torch::kFloat32) == f.sa).to(torch::kFloat64).mean().item<double>();
  EXPECT_DOUBLE_EQ(after.back(), expected);
}

TEST(ZerothOrderObjective, LossAtEpsEqualsTheObjectiveComputedByHand) {
  Fixture f;
  auto self = comm::make_self_communicator();
  fm::EmbeddingApi api(f.model);
  torch::manual_seed(5);
  const auto eps = 0.05 * torch::randn({8, 8});
  const double norm = eps.to(torch::kFloat64).pow(2).sum().sqrt().item<double>();
  torch::NoGradGuard ng;
  const auto logits = f.g.logits(f.model->forward(f.x + eps)).to(torch::kFloat64);
  const auto prob = torch::sigmoid(logits), a = f.sa.to(torch::kFloat64);
  // -CE(g, a) = mean(a log p + (1 - a) log(1 - p));  CE(g, 1/2) = mean(-(log p + log(1 - p)) / 2)
  const double neg_ce = (a * prob.log() + (1 - a) * (1 - prob).log()).mean().item<double>();
  const double confusion = (-0.5 * (prob.log() + (1 - prob).log())).mean().item<double>();
  for (const auto& [objective, sa_term] : {std::pair{"neg_ce", neg_ce}, std::pair{"confusion", confusion}}) {
    auto p = f.problem(40, 1);
    p.options.objective = objective;
    p.options.lambda = 0.3;
    p.options.lambda_1 = 2.0;
    const double expected = 2.0 * sa_term + 0.3 * norm;
    const double zo = editing::zeroth_order_loss(p, api, *self, f.x, f.sa, eps);
    EXPECT_NEAR(zo, expected, 1e-5 * std::abs(expected)) << objective;
    // ... and the white-box editors' objective agrees on the same batch.
    const double whitebox = editing::dne_objective(f.g.logits(f.model->forward(f.x + eps)), f.sa, eps, p.options)
                                .loss.item<double>();
    EXPECT_NEAR(whitebox, expected, 1e-5 * std::abs(expected)) << objective;
  }
}

TEST(Adversary, RefitScheduleAndFitOnTheNoisedTrainingSet) {
  Fixture f;
  auto self = comm::make_self_communicator();
  auto p = f.problem(10, 2);
  {
    editing::Adversary frozen(p);
    for (int b = 0; b < 10; ++b) EXPECT_FALSE(frozen.due(b));
  }
  p.options.adversary = "refit";
  p.options.refit_every = 3;
  p.options.batch_size = 7;  // 40 images: chunks of 7, the last one short
  editing::Adversary adversary(p);
  for (int b : {0, 1, 2, 4, 5, 7}) EXPECT_FALSE(adversary.due(b)) << b;
  for (int b : {3, 6, 9}) EXPECT_TRUE(adversary.due(b)) << b;
  EXPECT_TRUE(torch::equal(adversary.probe().weight(), f.g.weight()));  // starts as g
  // eps darkens pixel (0, 0), where the attribute lives: a refit probe must be fitted on x + eps.
  auto eps = torch::zeros({8, 8});
  eps[0][0] = -0.6f;
  const auto embed = [&](const std::vector<torch::Tensor>& batches) {
    std::vector<torch::Tensor> z;
    for (const auto& images : batches) z.push_back(f.model->forward(images));
    return z;
  };
  adversary.refit(eps, embed, 3, *self);  // 3 chunks per call: the same bits as one at a time
  EXPECT_EQ(adversary.refits(), 1);
  torch::NoGradGuard ng;
  const auto direct = probe::LinearProbe::fit(f.model->forward(f.x + eps), f.sa.to(torch::kInt64), p.probes);
  EXPECT_TRUE(torch::allclose(adversary.probe().weight(), direct.weight(), 1e-6, 1e-7));
  EXPECT_FALSE(torch::allclose(adversary.probe().weight(), f.g.weight(), 1e-3, 1e-3));
  // The frozen g is fooled more by this noise than the refitted probe is.
  const auto z = f.model->forward(f.x + eps);
  const auto accuracy = [&](const probe::LinearProbe& g) {
    return ((g.logits(z) > 0).to(torch::kFloat32) == f.sa).to(torch::kFloat64).mean().item<double>();
  };
  EXPECT_GE(accuracy(adversary.probe()), accuracy(f.g));
}

TEST(Adversary, RefitIsCountedAndTracedByEveryEditor) {
  Fixture f;
  auto self = comm::make_self_communicator();
  for (const char* method : {"whitebox", "gezo", "rge", "spsa"}) {
    auto base = f.problem(10, 1);  // 4 batches
    auto refit = base;
    refit.options.adversary = "refit";
    refit.options.refit_every = 2;  // before batch 2: one refit of 40 images
    fm::EmbeddingApi api_a(f.model), api_b(f.model);
    editing::ModelAccess a{f.model.get(), api_a, *self}, b{f.model.get(), api_b, *self};
    const auto r0 = experiment::method(method).edit(base, a);
    const auto r1 = experiment::method(method).edit(refit, b);
    EXPECT_EQ(r1.queries, r0.queries + 40) << method;
    const auto& flags = col(r1, "refit");
    EXPECT_EQ(std::count(flags.begin(), flags.end(), 1.0), 1) << method;
    EXPECT_EQ(std::count(col(r0, "refit").begin(), col(r0, "refit").end(), 1.0), 0) << method;
  }
}

TEST(Gezo, ChoosesTheBetterSignAndUsesBoth) {
  Fixture f;
  auto self = comm::make_self_communicator();
  fm::EmbeddingApi api(f.model);
  const auto r = editing::edit_gezo(f.problem(20, 3), api, *self);
  const auto &plus = col(r, "best_plus"), &minus = col(r, "best_minus"), &sign = col(r, "sign");
  const auto& acc = col(r, "accepted");
  int minus_chosen = 0, plus_chosen = 0;
  for (std::size_t i = 0; i < sign.size(); ++i) {
    if (acc[i] == 0) continue;
    // The argmin over all 2C candidates: the minus side wins exactly when its best is lower.
    EXPECT_EQ(sign[i], minus[i] < plus[i] ? -1.0 : 1.0) << i;
    (sign[i] < 0 ? minus_chosen : plus_chosen)++;
  }
  EXPECT_GT(minus_chosen, 0);
  EXPECT_GT(plus_chosen, 0);
}

TEST(Gezo, VelocityAndSigmaPersistAcrossIterationsAndBatches) {
  Fixture f;
  auto self = comm::make_self_communicator();
  fm::EmbeddingApi api(f.model);
  auto p = f.problem(10, 2);
  p.zo.momentum = 0.9;
  const auto r = editing::edit_gezo(p, api, *self);
  const auto &vel = col(r, "velocity_norm"), &acc = col(r, "accepted"), &sigma = col(r, "sigma");
  const auto& batch = col(r, "batch");
  bool seen_accept = false;
  for (std::size_t i = 0; i < vel.size(); ++i) {
    if (seen_accept) {
      EXPECT_GT(vel[i], 0.0) << "velocity reset at row " << i;
    }
    seen_accept = seen_accept || acc[i] > 0;
    if (i > 0 && acc[i] == 0) {
      EXPECT_EQ(vel[i], vel[i - 1]) << "a rejected step must keep the velocity";
    }
    if (i > 0 && batch[i] != batch[i - 1] && acc[i] > 0) {
      EXPECT_EQ(sigma[i], sigma[i - 1]) << "sigma reset at a new batch";
    }
  }
  EXPECT_TRUE(seen_accept);
}

TEST(Gezo, SigmaDecaysOnlyWhenNothingImproves) {
  Fixture f;
  auto self = comm::make_self_communicator();
  fm::EmbeddingApi api(f.model);
  auto p = f.problem(40, 6);
  p.zo.sigma_decay = 0.5;
  const auto r = editing::edit_gezo(p, api, *self);
  const auto &sigma = col(r, "sigma"), &acc = col(r, "accepted");
  double previous = p.zo.sigma;
  for (std::size_t i = 0; i < sigma.size(); ++i) {
    EXPECT_DOUBLE_EQ(sigma[i], acc[i] > 0 ? previous : std::max(previous * 0.5, p.zo.sigma_min)) << i;
    previous = sigma[i];
  }
}

TEST(Gezo, OnRejectDecayAndSigmaGrowth) {
  // gezo.on_reject = "decay": a rejected iteration scales the velocity by m (the look-ahead
  // returns towards the current noise); gezo.sigma_growth: an accepted one multiplies sigma,
  // never above gezo.sigma.
  Fixture f;
  auto self = comm::make_self_communicator();
  fm::EmbeddingApi api(f.model);
  auto p = f.problem(40, 6);
  p.zo.momentum = 0.8;
  p.zo.on_reject = "decay";
  p.zo.sigma_growth = 1.5;
  const auto r = editing::edit_gezo(p, api, *self);
  const auto &vel = col(r, "velocity_norm"), &acc = col(r, "accepted"), &sigma = col(r, "sigma");
  double previous = p.zo.sigma;
  int rejected_with_velocity = 0, grown = 0;
  for (std::size_t i = 0; i < sigma.size(); ++i) {
    const double expected = acc[i] > 0 ? std::min(previous * 1.5, p.zo.sigma) : std::max(previous * 0.5, p.zo.sigma_min);
    EXPECT_NEAR(sigma[i], expected, 1e-15 * expected) << i;
    grown += acc[i] > 0 && sigma[i] > previous;
    previous = sigma[i];
    if (i > 0 && acc[i] == 0 && vel[i - 1] > 0) {
      EXPECT_NEAR(vel[i], 0.8 * vel[i - 1], 1e-6 * vel[i - 1]) << i;
      ++rejected_with_velocity;
    }
  }
  EXPECT_GT(rejected_with_velocity, 0);
  EXPECT_GT(grown, 0);
}

TEST(Gezo, BudgetIsNeverExceededByOneImage) {
  Fixture f;
  auto self = comm::make_self_communicator();
  auto p = f.problem(10, 50);
  // First local iteration of a batch: (2*6 + 1) * 10 = 130 images; later ones 120.
  p.zo.budget = 1000;  // 130 + 120 * 4 = 610, + 130 = 740, + 120 = 860, + 120 = 980; next needs 120
  fm::EmbeddingApi api(f.model, {p.zo.budget, 0});
  const auto r = editing::edit_gezo(p, api, *self);
  EXPECT_EQ(r.queries, 980);
  EXPECT_EQ(api.images(), 980);
  EXPECT_NE(r.status.find("budget: stopped after 980 of 1000 images"), std::string::npos) << r.status;
  EXPECT_EQ(col(r, "queries").back(), 980.0);
}

TEST(Gezo, SameSeedSameBits) {
  Fixture f;
  auto self = comm::make_self_communicator();
  fm::EmbeddingApi a(f.model), b(f.model);
  const auto r1 = editing::edit_gezo(f.problem(20, 2), a, *self);
  const auto r2 = editing::edit_gezo(f.problem(20, 2), b, *self);
  EXPECT_TRUE(torch::equal(r1.noise, r2.noise));
}

TEST(TwoPoint, RgeAndSpsaDecreaseTheLossWithSgdAndAdam) {
  Fixture f;
  auto self = comm::make_self_communicator();
  for (const char* method : {"rge", "spsa"})
    for (const char* optimizer : {"sgd", "adam"}) {
      auto p = f.problem(20, 20);
      p.zo.optimizer = optimizer;
      p.zo.lr = std::string(optimizer) == "sgd" ? 1e-4 : 0.05;
      p.zo.sigma = 0.01;
      fm::EmbeddingApi api(f.model);
      const auto r = std::string(method) == "rge" ? editing::edit_rge(p, api, *self)
                                                  : editing::edit_spsa(p, api, *self);
      const auto& loss = col(r, "loss");
      ASSERT_EQ(loss.size(), 40u);
      const double first = (loss[0] + loss[1]) / 2, last = (loss[38] + loss[39]) / 2;
      EXPECT_LT(last, first - 1e-3) << method << "/" << optimizer;
      EXPECT_EQ(r.queries, 40 * 13 * 20);  // (2q + 1) evaluations of a 20-image batch per step
    }
}

TEST(TwoPoint, SpsaDirectionsAreRademacherScaledByMu) {
  // With sgd, lr = 1, one step and q = 1: eps_1 = -(L+ - L-)/(2 mu) u, so |eps_1| is constant
  // over pixels (all |u_i| = 1).
  Fixture f;
  auto self = comm::make_self_communicator();
  auto p = f.problem(40, 1);
  p.zo.candidates = 1;
  p.zo.optimizer = "sgd";
  p.zo.lr = 1.0;
  fm::EmbeddingApi api(f.model);
  const auto r = editing::edit_spsa(p, api, *self);
  const auto mag = r.noise.abs();
  EXPECT_GT(mag.min().item<double>(), 0.0);
  EXPECT_NEAR(mag.max().item<double>(), mag.min().item<double>(), 1e-7);
}

/// relu(flatten(x)), but NaN for any image with a pixel above 2: a model that breaks on large
/// perturbations, as a badly conditioned API might.
class BreaksAboveTwo : public ReluFm {
 public:
  torch::Tensor forward(const torch::Tensor& x) override {
    auto z = ReluFm::forward(x);
    const auto broken = (x.flatten(1) > 2).any(1, true);  // (B, 1)
    return torch::where(broken, torch::full_like(z, std::nan("")), z);
  }
};

TEST(TwoPoint, NonFiniteCandidateLossStopsBeforeTheUpdate) {
  Fixture f;
  auto self = comm::make_self_communicator();
  auto p = f.problem(20, 1);
  p.zo.sigma = 5.0;  // perturbations push pixels above 2
  for (const char* mode : {"seed", "dense"}) {
    p.comm.mode = mode;
    fm::EmbeddingApi api(std::make_shared<BreaksAboveTwo>());
    try {
      editing::edit_rge(p, api, *self);
      FAIL() << "expected NumericError in " << mode << " mode";
    } catch (const NumericError& e) {
      EXPECT_NE(std::string(e.what()).find("rge: a candidate loss or the gradient estimate is not finite at step 0"),
                std::string::npos) << e.what();
    }
  }
}

TEST(TwoPoint, DenseAndSeedModesAgreeOnOneRank) {
  Fixture f;
  auto self = comm::make_self_communicator();
  auto p = f.problem(20, 3);
  fm::EmbeddingApi a(f.model), b(f.model);
  const auto seed_mode = editing::edit_rge(p, a, *self);
  p.comm.mode = "dense";
  const auto dense_mode = editing::edit_rge(p, b, *self);
  EXPECT_TRUE(torch::allclose(seed_mode.noise, dense_mode.noise, 1e-5, 1e-7));
}

TEST(NoiseBudget, ProjectionByHand) {
  config::DneOptions o;
  const auto eps = torch::tensor({3.0f, -4.0f}).reshape({1, 2});  // ||eps|| = 5
  EXPECT_TRUE(torch::equal(editing::project_noise(eps, o), eps));  // no bound: unchanged
  o.max_l2 = 1.0;
  EXPECT_TRUE(torch::allclose(editing::project_noise(eps, o), torch::tensor({0.6f, -0.8f}).reshape({1, 2})));
  o.max_linf = 0.7;  // after the L2 scaling: (0.6, -0.8) -> (0.6, -0.7), inside both
  EXPECT_TRUE(torch::allclose(editing::project_noise(eps, o), torch::tensor({0.6f, -0.7f}).reshape({1, 2})));
  o.max_l2 = 0.0;
  EXPECT_TRUE(torch::equal(editing::project_noise(eps, o), torch::tensor({0.7f, -0.7f}).reshape({1, 2})));
  o.max_l2 = 10.0;
  o.max_linf = 0.0;
  EXPECT_TRUE(torch::equal(editing::project_noise(eps, o), eps));  // inside the ball: unchanged
}

TEST(NoiseBudget, ClipImagesClampsToThePixelRange) {
  config::DneOptions o;
  const auto x = torch::tensor({0.1f, 0.5f, 0.95f}).reshape({1, 1, 1, 3});
  const auto eps = torch::tensor({-0.3f, 0.2f, 0.2f}).reshape({1, 3});
  EXPECT_TRUE(torch::allclose(editing::add_noise(x, eps, o), torch::tensor({-0.2f, 0.7f, 1.15f}).reshape({1, 1, 1, 3})));
  o.clip_images = true;
  EXPECT_TRUE(torch::allclose(editing::add_noise(x, eps, o), torch::tensor({0.0f, 0.7f, 1.0f}).reshape({1, 1, 1, 3})));
}

TEST(NoiseBudget, EveryEditorStaysInsideTheBudget) {
  Fixture f;
  auto self = comm::make_self_communicator();
  for (const char* method : {"random", "whitebox", "gezo", "rge", "spsa", "nes"}) {
    for (const bool linf : {true, false}) {
      auto p = f.problem(10, 2);
      p.options.lr = 0.5;          // white-box: large steps, so the budget must bind
      p.options.random_l2 = 5.0;   // random: far outside the budget before projection
      p.zo.sigma = 0.5;
      p.zo.lr = 5.0;
      p.zo.optimizer = "sgd";
      const double bound = linf ? 0.02 : 0.05;
      (linf ? p.options.max_linf : p.options.max_l2) = bound;
      fm::EmbeddingApi api(f.model);
      editing::ModelAccess access{f.model.get(), api, *self};
      const auto r = experiment::method(method).edit(p, access);
      const double got = linf ? r.noise.abs().max().item<double>() : r.noise.pow(2).sum().sqrt().item<double>();
      EXPECT_LE(got, bound * (1 + 1e-6)) << method << (linf ? " linf" : " l2");
      EXPECT_GT(got, 0.5 * bound) << method << (linf ? " linf" : " l2") << ": the budget should bind here";
    }
  }
}

TEST(NoiseBudget, EveryEditorStaysInsideTheBudgetInEveryBasis) {
  Fixture f;
  auto self = comm::make_self_communicator();
  for (const char* basis : {"lowres", "dct"})
    for (const char* method : {"whitebox", "gezo", "rge", "spsa", "nes"})
      for (const bool linf : {true, false}) {
        auto p = f.problem(10, 2);
        p.options.noise_basis = basis;
        p.options.noise_dim = 4;
        p.options.lr = 0.5;
        p.zo.sigma = 0.5;
        p.zo.lr = 5.0;
        p.zo.optimizer = "sgd";
        const double bound = linf ? 0.02 : 0.05;
        (linf ? p.options.max_linf : p.options.max_l2) = bound;
        fm::EmbeddingApi api(f.model);
        editing::ModelAccess access{f.model.get(), api, *self};
        const auto r = experiment::method(method).edit(p, access);
        const std::string what = std::string(method) + " " + basis + (linf ? " linf" : " l2");
        const double got = linf ? r.noise.abs().max().item<double>() : r.noise.pow(2).sum().sqrt().item<double>();
        EXPECT_LE(got, bound * (1 + 1e-6)) << what;
        EXPECT_GT(got, 0.5 * bound) << what << ": the budget should bind here";
        ASSERT_EQ(r.noise.sizes(), (std::vector<std::int64_t>{8, 8})) << what;
        if (!linf) {  // the L2 budget keeps the noise in the basis's range: projecting onto it changes nothing
          const editing::NoiseBasis b(basis, 4, 8, 8);
          const auto n = r.noise.to(torch::kFloat64);
          const auto on_range = b.left().mm(torch::pinverse(b.left())).mm(n).mm(torch::pinverse(b.right()).t().mm(b.right().t()));
          EXPECT_TRUE(torch::allclose(on_range, n, 1e-4, 1e-6)) << what;
        }
      }
}

TEST(Nes, DecreasesTheLossInEveryBasisAndCountsItsQueries) {
  Fixture f;
  auto self = comm::make_self_communicator();
  for (const char* basis : {"pixel", "lowres", "dct"})
    for (const char* shaping : {"rank", "none"}) {
      auto p = f.problem(20, 20);
      p.options.noise_basis = basis;
      p.options.noise_dim = 4;
      p.zo.shaping = shaping;
      p.zo.candidates = 6;
      p.zo.optimizer = "adam";
      p.zo.lr = 0.05;
      p.zo.sigma = 0.01;
      fm::EmbeddingApi api(f.model);
      const auto r = editing::edit_nes(p, api, *self);
      const auto& loss = col(r, "loss");
      ASSERT_EQ(loss.size(), 40u);
      const double first = (loss[0] + loss[1]) / 2, last = (loss[38] + loss[39]) / 2;
      EXPECT_LT(last, first - 1e-3) << basis << "/" << shaping;
      EXPECT_EQ(r.queries, 40 * 12 * 20);  // 2q evaluations of a 20-image batch per step, no extra one
      EXPECT_EQ(api.images(), r.queries);
    }
}

TEST(Progress, ReportedAtZeroEveryMarkAndTheEndByEveryEditor) {
  Fixture f;
  auto self = comm::make_self_communicator();
  for (const char* method : {"whitebox", "gezo", "rge", "nes"}) {
    auto p = f.problem(10, 1);
    p.options.eval_every = 250;
    std::vector<std::int64_t> at;
    std::vector<double> norms;
    p.progress = [&](const torch::Tensor& eps, std::int64_t queries) {
      at.push_back(queries);
      norms.push_back(eps.norm().item<double>());
    };
    fm::EmbeddingApi api(f.model);
    editing::ModelAccess access{f.model.get(), api, *self};
    const auto r = experiment::method(method).edit(p, access);
    ASSERT_GE(at.size(), 2u) << method;
    EXPECT_EQ(at.front(), 0) << method;
    EXPECT_EQ(norms.front(), 0.0) << method;  // the start: no noise yet
    EXPECT_EQ(at.back(), r.queries) << method;
    EXPECT_NEAR(norms.back(), r.noise.norm().item<double>(), 1e-6) << method;  // the end: the editor's noise
    for (std::size_t k = 1; k + 1 < at.size(); ++k) {
      EXPECT_GE(at[k], 250 * static_cast<std::int64_t>(k)) << method;  // at or after its mark
      EXPECT_LT(at[k - 1], at[k]) << method;
    }
    p.options.eval_every = 0;  // off: never called
    at.clear();
    fm::EmbeddingApi quiet(f.model);
    editing::ModelAccess access2{f.model.get(), quiet, *self};
    experiment::method(method).edit(p, access2);
    EXPECT_TRUE(at.empty()) << method;
  }
}

TEST(NoiseBudget, NormMatchedControlHasTheLearnedNormInsideTheBound) {
  config::DneOptions o;
  torch::manual_seed(9);
  const auto learned = 0.05 * torch::randn({8, 8});
  const double norm = learned.pow(2).sum().sqrt().item<double>();
  const auto a = editing::norm_matched_noise(learned, o, 3);
  EXPECT_NEAR(a.pow(2).sum().sqrt().item<double>(), norm, 1e-6 * norm);
  EXPECT_TRUE(torch::equal(a, editing::norm_matched_noise(learned, o, 3)));   // seeded
  EXPECT_FALSE(torch::equal(a, editing::norm_matched_noise(learned, o, 4)));
  EXPECT_FALSE(torch::allclose(a, learned));  // random, not a copy
  // A binding L-inf bound: 8x8 pixels at most 0.02 allow a norm of 0.16; ask for 0.1.
  o.max_linf = 0.02;
  const auto bounded_like = learned * (0.1 / norm);
  const auto b = editing::norm_matched_noise(bounded_like, o, 3);
  EXPECT_LE(b.abs().max().item<double>(), 0.02 + 1e-9);
  EXPECT_NEAR(b.pow(2).sum().sqrt().item<double>(), 0.1, 1e-5);
  EXPECT_TRUE(torch::equal(editing::norm_matched_noise(torch::zeros({8, 8}), o, 3), torch::zeros({8, 8})));
}

}  // namespace
