// Foundation models: the built-in CNN (determinism, shapes, hand-counted FLOPs and parameters,
// frozen weights, gradients to the input), the EmbeddingApi (counting, batching, exact budget)
// and TorchScript loading of a module built and saved here in C++.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include <unistd.h>

#include "dne/core/errors.hpp"
#include "dne/fm/conv_encoder.hpp"
#include "dne/fm/foundation_model.hpp"

namespace {

using dne::fm::ConvEncoder;

TEST(ConvEncoder, HandCountedFlopsAndParameters) {
  // image 32, width 4, embed 8. Per stage (side after stride 2; in -> out):
  //  s0: 16x16, 1->4:  2*256*9*1*4 = 18432,  2*256*9*4*4 = 73728
  //  s1:  8x8,  4->8:  2*64*9*4*8  = 36864,  2*64*9*8*8  = 73728
  //  s2:  4x4,  8->16: 2*16*9*8*16 = 36864,  2*16*9*16*16 = 73728
  //  s3:  2x2, 16->32: 2*4*9*16*32 = 36864,  2*4*9*32*32 = 73728
  //  head: 2 * (32*4) * 8 = 2048                      total 425984
  // Parameters: 36+144 + 288+576 + 1152+2304 + 4608+9216 + 128*8 = 19348.
  ConvEncoder m(32, 4, 8, 0);
  EXPECT_DOUBLE_EQ(m.flops_per_image(), 425984.0);
  EXPECT_EQ(m.parameter_count(), 19348);
  EXPECT_EQ(m.forward(torch::rand({3, 1, 32, 32})).sizes(), (std::vector<std::int64_t>{3, 8}));
}

TEST(ConvEncoder, SameSeedSameBitsDifferentSeedDifferent) {
  ConvEncoder a(32, 8, 16, 11), b(32, 8, 16, 11), c(32, 8, 16, 12);
  const auto x = torch::rand({4, 1, 32, 32});
  EXPECT_TRUE(torch::equal(a.forward(x), b.forward(x)));
  EXPECT_FALSE(torch::allclose(a.forward(x), c.forward(x)));
}

TEST(ConvEncoder, FrozenWeightsButGradientReachesInput) {
  ConvEncoder m(32, 4, 8, 0);
  auto x = torch::rand({2, 1, 32, 32}, torch::requires_grad());
  m.forward(x).pow(2).sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_GT(x.grad().abs().sum().item<double>(), 0.0);
}

TEST(EmbeddingApi, CountsCallsSplitsBatchesAndHasNoGrad) {
  auto model = std::make_shared<ConvEncoder>(32, 4, 8, 0);
  dne::fm::EmbeddingApi api(model, {0, 4});
  auto x = torch::rand({10, 1, 32, 32}, torch::requires_grad());
  const auto z = api.embed(x);
  EXPECT_EQ(api.calls(), 3);  // 4 + 4 + 2
  EXPECT_EQ(api.images(), 10);
  EXPECT_FALSE(z.requires_grad());
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::allclose(z, model->forward(x), 1e-5, 1e-6));
}

TEST(EmbeddingApi, BudgetIsExactAndRefusalEmbedsNothing) {
  auto model = std::make_shared<ConvEncoder>(32, 4, 8, 0);
  dne::fm::EmbeddingApi api(model, {25, 0});
  api.embed(torch::rand({20, 1, 32, 32}));
  EXPECT_EQ(api.remaining(), 5);
  EXPECT_THROW(api.embed(torch::rand({6, 1, 32, 32})), dne::BudgetExceeded);
  EXPECT_EQ(api.images(), 20);
  EXPECT_EQ(api.calls(), 1);
  api.embed(torch::rand({5, 1, 32, 32}));
  EXPECT_EQ(api.remaining(), 0);
  EXPECT_EQ(api.images(), 25);
}

TEST(EmbeddingApi, RoundsReturnedFloatsWhenAsked) {
  auto model = std::make_shared<ConvEncoder>(32, 4, 8, 0);
  dne::fm::ApiOptions o;
  o.round_decimals = 2;
  dne::fm::EmbeddingApi api(model, o);
  const auto x = torch::rand({3, 1, 32, 32});
  const auto z = api.embed(x);
  // Every value is a multiple of 0.01 (up to float representation) and within 0.005 of the truth.
  EXPECT_LT((z * 100 - torch::round(z * 100)).abs().max().item<double>(), 1e-3);
  torch::NoGradGuard ng;
  EXPECT_LE((z - model->forward(x)).abs().max().item<double>(), 0.005 + 1e-6);
}

TEST(EmbeddingApi, AddsLatencyPerCall) {
  auto model = std::make_shared<ConvEncoder>(32, 4, 8, 0);
  dne::fm::ApiOptions o;
  o.max_batch = 2;
  o.latency_ms = 20;
  dne::fm::EmbeddingApi api(model, o);
  const auto start = std::chrono::steady_clock::now();
  api.embed(torch::rand({5, 1, 32, 32}));  // 3 calls
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(api.calls(), 3);
  EXPECT_GE(ms, 60.0);  // a lower bound only: the simulated latency is really waited
}

TEST(MakeModel, UnknownKindIsConfigError) {
  dne::config::FmOptions o;
  o.kind = "vit-huge";
  EXPECT_THROW(dne::fm::make_model(o, 32, 0), dne::ConfigError);
}

class TorchScriptTest : public ::testing::Test {
 protected:
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("dne_ts_" + std::to_string(::getpid()));
  void SetUp() override { std::filesystem::create_directories(dir); }
  // Not std::filesystem::remove_all: pip LibTorch >= 2.5 exports its own statically linked copy of
  // it (pytorch/pytorch#133437) and calls from programs linked with it crash. The fixture writes
  // at most these files.
  void TearDown() override {
    for (const char* f : {"encoder.pt", "garbage.pt"}) std::remove((dir / f).c_str());
    ::rmdir(dir.c_str());
  }
  std::string save(const std::string& source) {
    torch::jit::Module m("Encoder");
    m.register_parameter("scale", torch::full({1}, 3.0), false);
    m.define(source);
    const auto path = (dir / "encoder.pt").string();
    m.save(path);
    return path;
  }
};

TEST_F(TorchScriptTest, SavedModuleLoadsAndMatches) {
  // Embedding = 3 * (mean of each image row) -> (B, H).
  const auto path = save("def forward(self, x):\n  return self.scale * x.mean(dim=3).flatten(1)\n");
  dne::config::FmOptions o;
  o.kind = "torchscript";
  o.torchscript = path;
  auto model = dne::fm::make_model(o, 32, 0);
  EXPECT_EQ(model->embed_dim(), 32);
  const auto x = torch::rand({2, 1, 32, 32}, torch::requires_grad());
  const auto z = model->forward(x);
  EXPECT_TRUE(torch::allclose(z, 3.0 * x.mean(3).flatten(1)));
  z.sum().backward();  // white-box access works through TorchScript too
  EXPECT_NEAR(x.grad()[0][0][0][0].item<double>(), 3.0 / 32.0, 1e-6);
}

TEST_F(TorchScriptTest, WrongOutputShapeMissingAndGarbageFilesAreModelErrors) {
  const auto bad = save("def forward(self, x):\n  return x.sum()\n");
  dne::config::FmOptions o;
  o.kind = "torchscript";
  o.torchscript = bad;
  try {
    dne::fm::make_model(o, 32, 0);
    FAIL() << "expected ModelError";
  } catch (const dne::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("must return (B, D) float32"), std::string::npos) << e.what();
  }
  o.torchscript = (dir / "missing.pt").string();
  EXPECT_THROW(dne::fm::make_model(o, 32, 0), dne::ModelError);
  const auto garbage = (dir / "garbage.pt").string();
  { std::ofstream(garbage) << "not a zip archive"; }
  o.torchscript = garbage;
  EXPECT_THROW(dne::fm::make_model(o, 32, 0), dne::ModelError);
}

}  // namespace
