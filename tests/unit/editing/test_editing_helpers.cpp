// The editing module's small parts on hand-computed cases: the SA term per image, a noise scaled
// to another's norm under an L-infinity bound, the objective's parts, the ERM editor, the image
// rows an editor reads, the basis a config names, the trace, the host hand-over and the image
// count of a zeroth-order iteration.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "dne/config/config.hpp"
#include "dne/core/errors.hpp"
#include "dne/editing/image_rows.hpp"
#include "dne/editing/noise_basis.hpp"
#include "dne/editing/noise_editor.hpp"
#include "dne/editing/objective.hpp"
#include "dne/editing/trace.hpp"
#include "dne/editing/zeroth_order.hpp"

namespace {

namespace ed = dne::editing;

TEST(SaTermPerImage, NegativeCrossEntropyOrConfusionByHand) {
  const auto logits = torch::tensor({0.0, 2.0, -1.0}, torch::kFloat64);
  const auto sa = torch::tensor({1.0, 0.0, 1.0}, torch::kFloat64);
  const auto neg_ce = ed::sa_term_per_image(logits, sa, "neg_ce");
  // -CE(l, a) = -[a log(1 + e^-l) + (1 - a) log(1 + e^l)]
  EXPECT_NEAR(neg_ce[0].item<double>(), -std::log(2.0), 1e-12);
  EXPECT_NEAR(neg_ce[1].item<double>(), -std::log(1.0 + std::exp(2.0)), 1e-12);
  EXPECT_NEAR(neg_ce[2].item<double>(), -std::log(1.0 + std::exp(1.0)), 1e-12);
  // CE(l, 1/2) = (log(1 + e^-l) + log(1 + e^l)) / 2, whatever a is
  const auto confusion = ed::sa_term_per_image(logits, sa, "confusion");
  EXPECT_NEAR(confusion[0].item<double>(), std::log(2.0), 1e-12);
  EXPECT_NEAR(confusion[1].item<double>(), 0.5 * (std::log(1.0 + std::exp(-2.0)) + std::log(1.0 + std::exp(2.0))), 1e-12);
  EXPECT_THROW(ed::sa_term_per_image(logits, sa, "mse"), dne::ConfigError);
}

TEST(DneObjective, TheTermsOfOneBatchByHand) {
  dne::config::DneOptions o;
  o.objective = "neg_ce";
  o.lambda = 0.5;
  o.lambda_1 = 2.0;
  const auto logits = torch::tensor({0.0, 0.0}, torch::kFloat64);
  const auto sa = torch::tensor({1.0, 0.0}, torch::kFloat64);
  const auto noise = torch::tensor({{3.0, 0.0}, {0.0, 4.0}}, torch::kFloat64);  // ||eps||_2 = 5
  const ed::ObjectiveTerms t = ed::dne_objective(logits, sa, noise, o);
  EXPECT_NEAR(t.sa_ce.item<double>(), std::log(2.0), 1e-12);  // CE at logit 0, either label
  EXPECT_NEAR(t.noise_l2.item<double>(), 5.0, 1e-12);
  EXPECT_NEAR(t.loss.item<double>(), 2.0 * -std::log(2.0) + 0.5 * 5.0, 1e-12);
}

TEST(ScaledToNorm, TheOtherNoisesNormThenClippedAndRescaled) {
  dne::config::DneOptions o;
  const auto raw = torch::tensor({{1.0f, 0.5f}, {0.0f, 0.0f}});
  const auto like = torch::tensor({{0.6f, 0.0f}, {0.0f, 0.8f}});  // norm 1
  const auto s = ed::scaled_to_norm(raw, like, o);
  EXPECT_NEAR(s[0][0].item<float>(), 1.0 / std::sqrt(1.25), 1e-6);
  EXPECT_NEAR(s[0][1].item<float>(), 0.5 / std::sqrt(1.25), 1e-6);
  // |eps| <= 0.8: the first pixel clips at 0.8, the second grows until the norm is 1 again:
  // 0.64 + (0.5 c)^2 = 1 -> c = 1.2, so 0.6.
  o.max_linf = 0.8;
  const auto clipped = ed::scaled_to_norm(raw, like, o);
  EXPECT_NEAR(clipped[0][0].item<float>(), 0.8, 1e-5);
  EXPECT_NEAR(clipped[0][1].item<float>(), 0.6, 1e-4);
  EXPECT_EQ(ed::scaled_to_norm(raw, torch::zeros({2, 2}), o).abs().sum().item<float>(), 0.0f);  // zero like: zero
}

ed::EditProblem problem_of(const torch::Tensor& images) {
  ed::EditProblem p;
  p.images = images;
  p.sa = torch::zeros({images.size(0)});
  return p;
}

TEST(EditNone, ZeroNoiseOfTheImageSizeAndNoQueries) {
  const auto p = problem_of(torch::rand({3, 1, 4, 5}));
  const ed::EditResult r = ed::edit_none(p);
  EXPECT_EQ(r.noise.sizes(), (std::vector<std::int64_t>{4, 5}));
  EXPECT_EQ(r.noise.abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(r.queries, 0);
  EXPECT_EQ(r.status, "complete");
}

TEST(ToProblemDevice, OnTheCpuTheBatchItself) {
  const auto p = problem_of(torch::rand({2, 1, 4, 4}));
  const auto batch = torch::rand({2, 3});
  EXPECT_EQ(ed::to_problem_device(p, batch).data_ptr(), batch.data_ptr());
}

TEST(FinishOnHost, TheNoiseAndEveryCheckpointOnTheHost) {
  ed::EditResult r;
  const auto noise = torch::tensor({{1.0f, 2.0f}});
  ed::finish_on_host(r, noise, {noise * 2, noise * 3});
  EXPECT_TRUE(r.noise.device().is_cpu());
  EXPECT_TRUE(torch::equal(r.noise, noise));
  ASSERT_EQ(r.checkpoints.size(), 2u);
  EXPECT_TRUE(torch::equal(r.checkpoints[1], noise * 3));
}

TEST(ImageRowsOfATensor, SizesSlicesAndSelections) {
  const auto images = torch::arange(3 * 2 * 2, torch::kFloat32).reshape({3, 1, 2, 2});
  const ed::ImageRows rows(images);
  EXPECT_TRUE(rows.defined());
  EXPECT_EQ(rows.size(), 3);
  EXPECT_EQ(rows.height(), 2);
  EXPECT_EQ(rows.width(), 2);
  EXPECT_EQ(rows.slice(1, 3)[0][0][0][0].item<float>(), 4.0f);  // image 1 starts at value 4
  const auto picked = rows.select(torch::tensor({2, 0}, torch::kInt64));
  EXPECT_EQ(picked[0][0][1][1].item<float>(), 11.0f);
  EXPECT_EQ(picked[1][0][0][1].item<float>(), 1.0f);
  EXPECT_EQ(rows.tensor().data_ptr(), images.data_ptr());
  EXPECT_FALSE(ed::ImageRows().defined());

  dne::data::ImageSet set;  // pixels in memory: viewed
  set.height = 1;
  set.width = 2;
  set.pixels = {0.25f, 0.5f, 0.75f, 1.0f};
  set.label = {0, 1};
  const auto of = ed::ImageRows::of(set, nullptr);
  EXPECT_EQ(of.size(), 2);
  EXPECT_EQ(of.slice(1, 2)[0][0][0][0].item<float>(), 0.75f);
}

TEST(NoiseBasisFromOptions, TheBasisTheDneKeysName) {
  dne::config::DneOptions o;
  o.noise_basis = "dct";
  o.noise_dim = 4;
  const auto b = ed::NoiseBasis::from_options(o, 16, 12);
  EXPECT_EQ(b.kind(), "dct");
  EXPECT_EQ(b.shape(), (std::vector<std::int64_t>{4, 4}));
  EXPECT_EQ(b.left().sizes(), (std::vector<std::int64_t>{16, 4}));
  EXPECT_EQ(b.right().sizes(), (std::vector<std::int64_t>{12, 4}));
  o.noise_basis = "pixel";
  EXPECT_EQ(ed::NoiseBasis::from_options(o, 16, 12).size(), 16 * 12);
  o.noise_basis = "wavelet";
  EXPECT_THROW(ed::NoiseBasis::from_options(o, 16, 12), dne::ConfigError);
}

TEST(Trace, ColumnsByNameAndStepsCounted) {
  dne::Trace t;
  EXPECT_EQ(t.steps(), 0u);
  t.add("loss", 1.5);
  t.add("sigma", 0.1);
  t.add("loss", 0.5);
  t.add("sigma", 0.05);
  EXPECT_EQ(t.steps(), 2u);
  EXPECT_EQ(t.columns().at("loss"), (std::vector<double>{1.5, 0.5}));
  EXPECT_EQ(t.columns().size(), 2u);
}

TEST(ImagesPerIteration, EvaluationsTimesTheBatch) {
  EXPECT_EQ(ed::images_per_iteration(17, 3), 51);  // GeZO: 2C + 1 evaluations at C = 8
  EXPECT_EQ(ed::images_per_iteration(0, 100), 0);
}

}  // namespace
