// The ViT's parts one by one (fm/vit_encoder.hpp: patch embedding, attention, MLP, block, the
// normalisation, the token stages), each against the formula written out in the test, and the
// fm module's loaders and wrappers (from_config, check_architecture, load_vit, load_torchscript,
// make_embedding_model, embed_each, on_device) on hand-checkable cases.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <thread>
#include <filesystem>
#include <string>

#include "dne/config/config.hpp"
#include "dne/core/errors.hpp"
#include "dne/fm/device_model.hpp"
#include "dne/fm/fm_file.hpp"
#include "dne/fm/foundation_model.hpp"
#include "dne/fm/remote_model.hpp"
#include "dne/fm/torchscript_model.hpp"
#include "dne/fm/vit_encoder.hpp"
#include "dne/serve/model_server.hpp"
#include "fm/tiny_vit.hpp"
#include "test_support.hpp"

namespace {

namespace fm = dne::fm;

/// The parameter `name` of `m`, as float64.
torch::Tensor param(torch::nn::Module& m, const std::string& name) {
  return m.named_parameters()[name].detach().to(torch::kFloat64);
}

/// Layer norm over the last axis with weight w and bias b, written out.
torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, double eps) {
  const auto mean = x.mean(-1, true);
  const auto var = (x - mean).pow(2).mean(-1, true);
  return (x - mean) / (var + eps).sqrt() * w + b;
}

torch::Tensor gelu_exact(const torch::Tensor& x) { return 0.5 * x * (1.0 + torch::erf(x / std::sqrt(2.0))); }

TEST(ViTParts, MlpIsFc1ExactGeluFc2) {
  torch::manual_seed(1);
  fm::Mlp mlp(4, 6);
  const auto x = torch::randn({2, 3, 4});
  torch::NoGradGuard ng;
  const auto h = torch::matmul(x.to(torch::kFloat64), param(*mlp, "fc1.weight").t()) + param(*mlp, "fc1.bias");
  const auto want = torch::matmul(gelu_exact(h), param(*mlp, "fc2.weight").t()) + param(*mlp, "fc2.bias");
  EXPECT_LT((mlp->forward(x).to(torch::kFloat64) - want).abs().max().item<double>(), 1e-5);
}

TEST(ViTParts, OneHeadAttentionIsSoftmaxOfScaledScoresTimesValues) {
  torch::manual_seed(2);
  const std::int64_t d = 4;
  fm::Attention attn(d, 1);
  const auto x = torch::randn({1, 3, d});
  torch::NoGradGuard ng;
  const auto qkv = torch::matmul(x.to(torch::kFloat64)[0], param(*attn, "qkv.weight").t()) + param(*attn, "qkv.bias");
  const auto q = qkv.slice(1, 0, d), k = qkv.slice(1, d, 2 * d), v = qkv.slice(1, 2 * d, 3 * d);
  auto out = torch::zeros({3, d}, torch::kFloat64);
  for (int i = 0; i < 3; ++i) {  // row by row: weights exp(q_i . k_j / 2) / sum_j
    double total = 0.0;
    std::vector<double> w(3);
    for (int j = 0; j < 3; ++j) total += w[static_cast<std::size_t>(j)] = std::exp((q[i] * k[j]).sum().item<double>() / 2.0);
    for (int j = 0; j < 3; ++j) out[i] += w[static_cast<std::size_t>(j)] / total * v[j];
  }
  const auto want = torch::matmul(out, param(*attn, "proj.weight").t()) + param(*attn, "proj.bias");
  EXPECT_LT((attn->forward(x).to(torch::kFloat64)[0] - want).abs().max().item<double>(), 1e-5);
}

TEST(ViTParts, PatchEmbeddingProjectsEachPatchInRowMajorOrder) {
  torch::manual_seed(3);
  fm::PatchEmbed embed(1, 3, 2);  // 4 x 4 image -> 2 x 2 patches of 2 x 2 -> 4 tokens of width 3
  const auto x = torch::randn({1, 1, 4, 4});
  torch::NoGradGuard ng;
  const auto w = param(*embed, "proj.weight").reshape({3, 4}), b = param(*embed, "proj.bias");
  const auto got = embed->forward(x).to(torch::kFloat64);  // (1, 4, 3)
  ASSERT_EQ(got.sizes(), (std::vector<std::int64_t>{1, 4, 3}));
  const auto img = x.to(torch::kFloat64)[0][0];
  for (int py = 0; py < 2; ++py)
    for (int px = 0; px < 2; ++px) {
      const auto patch = img.slice(0, 2 * py, 2 * py + 2).slice(1, 2 * px, 2 * px + 2).reshape({4});
      const auto want = torch::matmul(w, patch) + b;
      EXPECT_LT((got[0][2 * py + px] - want).abs().max().item<double>(), 1e-6) << py << "," << px;
    }
}

TEST(ViTParts, ABlockIsTwoPreNormResiduals) {
  torch::manual_seed(4);
  const double eps = 1e-6;
  fm::TransformerBlock block(4, 2, 8, eps);
  {
    torch::NoGradGuard ng;  // norms that are not the identity, so a swapped norm shows
    for (auto& p : block->named_parameters())
      if (p.key().find("norm") != std::string::npos) p.value().copy_(torch::randn_like(p.value()) * 0.3 + 1.0);
  }
  const auto x = torch::randn({2, 3, 4});
  torch::NoGradGuard ng;
  auto modules = block->named_children();
  auto& attn = *modules["attn"]->as<fm::AttentionImpl>();
  auto& mlp = *modules["mlp"]->as<fm::MlpImpl>();
  const auto x64 = x.to(torch::kFloat64);
  const auto n1 = layer_norm(x64, param(*block, "norm1.weight"), param(*block, "norm1.bias"), eps);
  const auto h = x64 + attn.forward(n1.to(torch::kFloat32)).to(torch::kFloat64);
  const auto n2 = layer_norm(h, param(*block, "norm2.weight"), param(*block, "norm2.bias"), eps);
  const auto want = h + mlp.forward(n2.to(torch::kFloat32)).to(torch::kFloat64);
  fm::TransformerBlockImpl& impl = *block;
  EXPECT_LT((impl.forward(x).to(torch::kFloat64) - want).abs().max().item<double>(), 1e-5);
}

TEST(ViTParts, NormaliseReplicatesGrayscaleAndScalesEachChannel) {
  auto a = dne_test::tiny_vit(3);
  a.mean = {0.4, 0.5, 0.6};
  a.std = {0.2, 0.25, 0.5};
  fm::VisionTransformer vit(a);
  const auto images = torch::full({1, 1, 16, 16}, 0.9f);
  const auto n = vit->normalise(images);
  ASSERT_EQ(n.sizes(), (std::vector<std::int64_t>{1, 3, 16, 16}));
  EXPECT_NEAR(n[0][0][3][4].item<float>(), (0.9 - 0.4) / 0.2, 1e-6);
  EXPECT_NEAR(n[0][1][3][4].item<float>(), (0.9 - 0.5) / 0.25, 1e-6);
  EXPECT_NEAR(n[0][2][3][4].item<float>(), (0.9 - 0.6) / 0.5, 1e-6);
}

TEST(ViTParts, TokenStagesComposeToTheForward) {
  const auto a = dne_test::tiny_vit();
  fm::VisionTransformer vit(a);
  fm::initialise_vit_weights(*vit, 11, 0, a.patches_per_side());
  torch::manual_seed(5);
  const auto images = torch::rand({2, 1, 16, 16});
  torch::NoGradGuard ng;
  const auto normalised = vit->normalise(images);
  const auto tokens = vit->patch_tokens(normalised);  // (B, N, D): patches + their position rows
  ASSERT_EQ(tokens.sizes(), (std::vector<std::int64_t>{2, 4, 8}));
  auto children = vit->named_children();
  auto& embed = *children["patch_embed"]->as<fm::PatchEmbedImpl>();
  EXPECT_TRUE(torch::allclose(tokens, embed.forward(normalised) + vit->pos_embed.slice(1, 1), 1e-6, 1e-6));
  const auto encoded = vit->encode_tokens(tokens);  // (B, 1 + N, D): the class token first
  ASSERT_EQ(encoded.sizes(), (std::vector<std::int64_t>{2, 5, 8}));
  EXPECT_TRUE(torch::equal(encoded, vit->forward(images)));
}

TEST(ViTParts, TheEncoderIsFrozen) {
  fm::ViTEncoder enc(dne_test::tiny_vit(), "mean", 3);
  for (const auto& p : enc.module()->parameters()) EXPECT_FALSE(p.requires_grad());
  EXPECT_EQ(enc.embed_dim(), 8);
}

TEST(ViTArchitectureFromConfig, TheFmKeysAtAnImageSize) {
  dne::config::FmOptions o;
  o.patch_size = 8;
  o.in_chans = 3;
  o.embed_dim = 12;
  o.depth = 2;
  o.heads = 3;
  o.mlp_ratio = 2.0;
  o.mean = "0.5";
  o.std = "0.1,0.2,0.3";
  const auto a = fm::ViTArchitecture::from_config(o, 32);
  EXPECT_EQ(a.image_size, 32);
  EXPECT_EQ(a.width, 12);
  EXPECT_EQ(a.num_patches(), 16);
  EXPECT_EQ(a.mean, (std::vector<double>{0.5, 0.5, 0.5}));  // one value: every channel
  EXPECT_EQ(a.std, (std::vector<double>{0.1, 0.2, 0.3}));
  dne_test::expect_error<dne::ConfigError>([&] { fm::ViTArchitecture::from_config(o, 36); }, {"fm.patch_size", "36"});
  o.heads = 5;
  dne_test::expect_error<dne::ConfigError>([&] { fm::ViTArchitecture::from_config(o, 32); }, {"fm.heads", "fm.embed_dim"});
}

TEST(CheckArchitecture, TheFirstDifferingKeyAndTheFileAreNamed) {
  const auto a = dne_test::tiny_vit();
  EXPECT_NO_THROW(fm::check_architecture(a, a, "w.h5"));
  auto b = a;
  b.depth = 3;
  dne_test::expect_error<dne::ModelError>([&] { fm::check_architecture(a, b, "w.h5"); }, {"w.h5", "fm.depth"});
  b = a;
  b.image_size = 32;
  dne_test::expect_error<dne::ModelError>([&] { fm::check_architecture(a, b, "w.h5"); }, {"w.h5", "data.image_size"});
}

class FmLoaders : public dne_test::TempDirTest {};

/// fm.* keys describing tiny_vit().
dne::config::FmOptions tiny_options() {
  dne::config::FmOptions o;
  o.kind = "vit";
  o.patch_size = 8;
  o.embed_dim = 8;
  o.depth = 2;
  o.heads = 2;
  o.mlp_ratio = 2.0;
  return o;
}

TEST_F(FmLoaders, LoadVitSeededOrFromItsFile) {
  const auto o = tiny_options();
  const auto a = fm::load_vit(o, 16, 1), same = fm::load_vit(o, 16, 1), other = fm::load_vit(o, 16, 2);
  EXPECT_EQ(fm::content_hash(*a->module()), fm::content_hash(*same->module()));
  EXPECT_NE(fm::content_hash(*a->module()), fm::content_hash(*other->module()));
  fm::write_fm_file(path("w.h5"), *other->module(), fm::FmProvenance{});
  auto from_file = o;
  from_file.weights = path("w.h5");
  const auto loaded = fm::load_vit(from_file, 16, 1);  // the file's weights, not seed 1's
  EXPECT_EQ(fm::content_hash(*loaded->module()), fm::content_hash(*other->module()));
  from_file.depth = 3;
  dne_test::expect_error<dne::ModelError>([&] { fm::load_vit(from_file, 16, 1); }, {"w.h5", "fm.depth"});
}

TEST_F(FmLoaders, LoadTorchscriptNamesAMissingFile) {
  dne_test::expect_error<dne::ModelError>([&] { fm::load_torchscript(path("none.pt"), 16); }, {"none.pt"});
}

TEST_F(FmLoaders, MakeEmbeddingModelAndEmbedEachInOrder) {
  dne::config::FmOptions o;  // the CNN
  o.width = 4;
  o.embed_dim = 6;
  const std::shared_ptr<fm::EmbeddingModel> m = fm::make_embedding_model(o, dne::config::ApiOptions{}, 32, 0);
  EXPECT_EQ(m->embed_dim(), 6);
  EXPECT_EQ(m->parallelism(), 1);
  torch::manual_seed(6);
  const std::vector<torch::Tensor> batches{torch::rand({2, 1, 32, 32}), torch::rand({3, 1, 32, 32})};
  const auto each = m->embed_each(batches);
  ASSERT_EQ(each.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) EXPECT_TRUE(torch::equal(each[i], m->embed(batches[i]))) << i;
  EXPECT_EQ(each[1].sizes(), (std::vector<std::int64_t>{3, 6}));
}

TEST_F(FmLoaders, OnDeviceChecksThePrecisionAndKeepsTheModelsAnswers) {
  const auto inner = fm::load_vit(tiny_options(), 16, 4);
  dne_test::expect_error<dne::ConfigError>([&] { fm::on_device(inner, torch::kCPU, "fp16"); }, {"run.precision", "fp16"});
  const auto placed = fm::on_device(inner, torch::kCPU, "fp32");
  EXPECT_NE(placed->describe().find("on cpu (fp32)"), std::string::npos) << placed->describe();
  EXPECT_EQ(placed->embed_dim(), inner->embed_dim());
  torch::manual_seed(7);
  const auto x = torch::rand({2, 1, 16, 16}).requires_grad_(true);  // a differentiable input stays unpinned
  EXPECT_TRUE(torch::equal(placed->forward(x), inner->forward(x)));
}

TEST(RemoteModelOverHttp, TheServersHandComputableEmbeddings) {
  // A served model whose embedding of a 4 x 4 image is (sum, max) of its pixels.
  dne::serve::ServedModel served{{1, 4, 4}, 2, "test", [](const std::vector<float>& x, std::int64_t b) {
                                   std::vector<float> z;
                                   for (std::int64_t i = 0; i < b; ++i) {
                                     const float* p = x.data() + 16 * i;
                                     z.push_back(std::accumulate(p, p + 16, 0.0f));
                                     z.push_back(*std::max_element(p, p + 16));
                                   }
                                   return z;
                                 }};
  dne::serve::ModelServer server(served, dne::serve::ServerOptions{});
  const int port = server.bind();
  std::thread thread([&] { server.serve(); });
  {
    dne::config::ApiOptions api;
    api.url = "http://127.0.0.1:" + std::to_string(port);
    api.model = "dne";
    api.retries = 0;
    fm::RemoteModel remote(api, 4);
    EXPECT_EQ(remote.embed_dim(), 2);
    EXPECT_EQ(remote.endpoint(), api.url);
    auto images = torch::zeros({2, 1, 4, 4});
    images[0][0][1][2] = 0.5f;
    images[0][0][3][3] = 0.25f;
    images[1] += 0.125f;
    const auto z = remote.embed(images);
    EXPECT_EQ(z.sizes(), (std::vector<std::int64_t>{2, 2}));
    EXPECT_EQ(z[0][0].item<float>(), 0.75f);
    EXPECT_EQ(z[0][1].item<float>(), 0.5f);
    EXPECT_EQ(z[1][0].item<float>(), 2.0f);
    EXPECT_EQ(z[1][1].item<float>(), 0.125f);
    EXPECT_THROW(fm::RemoteModel(api, 8), dne::Error);  // the server takes 4 x 4 images, not 8 x 8
  }
  server.stop();
  thread.join();
}

}  // namespace
