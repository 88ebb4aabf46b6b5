// Unit tests of the MAE pretraining pieces (masking, patch order, the loss) and the AdamW
// optimiser: hand computation, or LibTorch's own AdamW as an independent implementation.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <set>

#include "dne/fm/foundation_model.hpp"
#include "dne/fm/vit_encoder.hpp"
#include "fm/tiny_vit.hpp"
#include "dne/pretrain/adamw.hpp"
#include "dne/pretrain/mae.hpp"

namespace {

using dne::fm::ViTArchitecture;

ViTArchitecture tiny(std::int64_t in_chans = 1) { return dne_test::tiny_vit(in_chans); }

TEST(Mae, VisiblePatchesAreASeededSortedSubset) {
  const auto v = dne::pretrain::visible_patches(1, 3, 17, 64, 0.75);
  ASSERT_EQ(v.size(), 16u);  // int(64 * 0.25)
  EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
  EXPECT_EQ(std::set<std::int64_t>(v.begin(), v.end()).size(), 16u);
  EXPECT_GE(v.front(), 0);
  EXPECT_LT(v.back(), 64);
  EXPECT_EQ(v, dne::pretrain::visible_patches(1, 3, 17, 64, 0.75));
  EXPECT_NE(v, dne::pretrain::visible_patches(1, 3, 18, 64, 0.75));
  EXPECT_NE(v, dne::pretrain::visible_patches(1, 4, 17, 64, 0.75));
  EXPECT_EQ(dne::pretrain::visible_patches(1, 0, 0, 10, 0.75).size(), 2u);  // int(2.5)
}

TEST(Mae, PatchifyOrderByHand) {
  // 1 image, 2 channels, 4x4 pixels, patch 2: patch (r, c) holds pixels (2r + p, 2c + q) in
  // order (p, q, channel).
  const auto img = torch::arange(32, torch::kFloat32).reshape({1, 2, 4, 4});
  const auto p = dne::pretrain::patchify(img, 2);
  ASSERT_EQ(p.sizes(), (std::vector<std::int64_t>{1, 4, 8}));
  // Patch 1 = row 0, column 1: pixels (0,2), (0,3), (1,2), (1,3); channel 0 values 2,3,6,7, channel 1 = +16.
  const std::vector<float> want{2, 18, 3, 19, 6, 22, 7, 23};
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(p[0][1][i].item<float>(), want[static_cast<std::size_t>(i)]);
}

TEST(Mae, LossByHandWithAZeroPredictor) {
  // decoder_pred = 0 makes every prediction 0, so the loss of an image is the mean over its
  // hidden patches of mean(target^2). Image 0 hides patch 3, image 1 hides patch 2.
  auto a = tiny();
  dne::pretrain::MaskedAutoencoder mae(a, dne::pretrain::DecoderOptions{8, 1, 2, 2.0});
  dne::fm::initialise_vit_weights(*mae, 1, 0, a.patches_per_side());
  {
    torch::NoGradGuard ng;
    for (auto& item : mae->named_parameters())
      if (item.key().rfind("decoder_pred.", 0) == 0) item.value().zero_();
  }
  torch::manual_seed(4);
  const auto x = torch::rand({2, 1, 16, 16});
  const auto vis = torch::tensor(std::vector<std::int64_t>{0, 1, 2, 0, 1, 3}).reshape({2, 3});
  torch::NoGradGuard ng;
  dne::pretrain::MaskedAutoencoderImpl& impl = *mae;
  const auto plain = impl.loss_per_image(x, vis, false);
  const auto xn = (x - 0.5) / 0.25;
  // Hidden patch 3 of image 0 = rows 8..15, columns 8..15; hidden patch 2 of image 1 = rows 8..15, columns 0..7.
  const double want0 = xn[0][0].slice(0, 8, 16).slice(1, 8, 16).pow(2).mean().item<double>();
  const double want1 = xn[1][0].slice(0, 8, 16).slice(1, 0, 8).pow(2).mean().item<double>();
  EXPECT_NEAR(plain[0].item<double>(), want0, 1e-5);
  EXPECT_NEAR(plain[1].item<double>(), want1, 1e-5);
  // Per-patch normalised targets (unbiased variance, 64 values): mean(t^2) = 63/64 * var/(var + 1e-6).
  const auto normed = mae->loss_per_image(x, vis, true);
  EXPECT_NEAR(normed[0].item<double>(), 63.0 / 64.0, 1e-4);
  EXPECT_NEAR(normed[1].item<double>(), 63.0 / 64.0, 1e-4);
}

TEST(AdamW, MatchesLibTorchsAdamW) {
  torch::manual_seed(0);
  auto w1 = torch::randn({4, 3}), b1 = torch::randn({3});
  auto w2 = w1.clone().set_requires_grad(true), b2 = b1.clone().set_requires_grad(true);
  dne::pretrain::AdamW mine({w1, b1}, {true, false}, 0.9, 0.95, 1e-8);
  torch::optim::AdamW theirs_w({w2}, torch::optim::AdamWOptions(0.01).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.05));
  torch::optim::AdamW theirs_b({b2}, torch::optim::AdamWOptions(0.01).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.0));
  for (int step = 0; step < 5; ++step) {
    const auto gw = torch::randn({4, 3}), gb = torch::randn({3});
    mine.step({gw, gb}, 0.01, 0.05);
    w2.mutable_grad() = gw.clone();
    b2.mutable_grad() = gb.clone();
    theirs_w.step();
    theirs_b.step();
    EXPECT_LT((w1 - w2).abs().max().item<double>(), 1e-7) << "step " << step;
    EXPECT_LT((b1 - b2).abs().max().item<double>(), 1e-7) << "step " << step;
  }
  EXPECT_EQ(mine.steps_taken(), 5);
}

TEST(AdamW, LearningRateScheduleByHand) {
  dne::config::PretrainOptions o;
  o.lr = 1.0;
  o.steps = 12;
  o.warmup_steps = 2;
  EXPECT_DOUBLE_EQ(dne::pretrain::learning_rate(o, 0), 0.5);
  EXPECT_DOUBLE_EQ(dne::pretrain::learning_rate(o, 1), 1.0);
  EXPECT_DOUBLE_EQ(dne::pretrain::learning_rate(o, 2), 1.0);                          // cos(0)
  EXPECT_NEAR(dne::pretrain::learning_rate(o, 7), 0.5, 1e-15);                        // halfway: cos(pi/2)
  EXPECT_NEAR(dne::pretrain::learning_rate(o, 12), 0.0, 1e-15);                       // the end
  o.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(dne::pretrain::learning_rate(o, 0), 1.0);
}

}  // namespace