// Unit tests of the built-in ViT and the FM file (the MAE pieces: pretrain/test_mae_adamw.cpp).
//
// Expected values come from hand computation (FLOPs, schedule, patch order, parameter layout)
// or from an independent implementation inside the test (per-head attention written with
// explicit loops and exp/sum; LibTorch's own AdamW). The Python reference forward
// (tests/pylib/ref_vit.py) checks the whole encoder end to end in tests/e2e.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "dne/core/errors.hpp"
#include "dne/core/files.hpp"
#include "dne/fm/fm_file.hpp"
#include "dne/fm/foundation_model.hpp"
#include "dne/fm/vit_encoder.hpp"
#include "fm/tiny_vit.hpp"
#include "dne/pretrain/adamw.hpp"
#include "dne/pretrain/mae.hpp"
#include "dne/store/result_file.hpp"

namespace {

using dne::fm::ViTArchitecture;

ViTArchitecture tiny(std::int64_t in_chans = 1) { return dne_test::tiny_vit(in_chans); }

std::filesystem::path temp_dir() {
  auto d = std::filesystem::temp_directory_path() / ("dne_test_vit_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d;
}

TEST(ViT, ParameterNamesAndShapesAreTimms) {
  dne::fm::VisionTransformer vit(tiny(3));
  std::map<std::string, std::vector<std::int64_t>> got;
  for (const auto& item : vit->named_parameters()) got[item.key()] = item.value().sizes().vec();
  // D = 8, C = 3, P = 8, N = 4, hidden = 16.
  std::map<std::string, std::vector<std::int64_t>> want = {
      {"cls_token", {1, 1, 8}}, {"pos_embed", {1, 5, 8}}, {"patch_embed.proj.weight", {8, 3, 8, 8}},
      {"patch_embed.proj.bias", {8}}, {"norm.weight", {8}}, {"norm.bias", {8}}};
  for (int i = 0; i < 2; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    want[b + "norm1.weight"] = {8};
    want[b + "norm1.bias"] = {8};
    want[b + "attn.qkv.weight"] = {24, 8};
    want[b + "attn.qkv.bias"] = {24};
    want[b + "attn.proj.weight"] = {8, 8};
    want[b + "attn.proj.bias"] = {8};
    want[b + "norm2.weight"] = {8};
    want[b + "norm2.bias"] = {8};
    want[b + "mlp.fc1.weight"] = {16, 8};
    want[b + "mlp.fc1.bias"] = {16};
    want[b + "mlp.fc2.weight"] = {8, 16};
    want[b + "mlp.fc2.bias"] = {8};
  }
  EXPECT_EQ(got, want);
}

TEST(ViT, FlopsCountedByHand) {
  ViTArchitecture a = tiny();
  a.depth = 1;
  // N = 4 patches, T = 5 tokens, D = 8, C*P*P = 64, hidden 16:
  // patch 2*4*64*8 = 4096; qkv 2*5*8*24 = 1920; scores 2*25*8 = 400; weighted sum 400;
  // proj 2*5*8*8 = 640; mlp 2*5*8*16*2 = 2560 -> 4096 + 5920 = 10016.
  EXPECT_DOUBLE_EQ(a.flops_per_image(), 10016.0);
  a.depth = 3;
  EXPECT_DOUBLE_EQ(a.flops_per_image(), 4096.0 + 3 * 5920.0);
}

/// Independent forward: per-head loops, explicit softmax, erf-GELU, LayerNorm by hand.
torch::Tensor reference_forward(dne::fm::VisionTransformerImpl& vit, const torch::Tensor& images) {
  const auto& a = vit.architecture();
  auto p = vit.named_parameters();
  auto layer_norm = [&](const torch::Tensor& x, const std::string& name) {
    const auto mu = x.mean(-1, true);
    const auto var = (x - mu).pow(2).mean(-1, true);
    return (x - mu) / (var + a.layer_norm_eps).sqrt() * p[name + ".weight"] + p[name + ".bias"];
  };
  auto linear = [&](const torch::Tensor& x, const std::string& name) {
    return torch::matmul(x, p[name + ".weight"].t()) + p[name + ".bias"];
  };
  const auto b = images.size(0);
  auto x = images.to(torch::kFloat64).expand({b, a.in_chans, a.image_size, a.image_size}).clone();
  for (std::int64_t c = 0; c < a.in_chans; ++c) x.select(1, c).sub_(a.mean[c]).div_(a.std[c]);
  // Patches by explicit slicing, row-major.
  std::vector<torch::Tensor> tokens;
  const auto side = a.patches_per_side();
  const auto w = p["patch_embed.proj.weight"].to(torch::kFloat64).reshape({a.width, -1});
  for (std::int64_t r = 0; r < side; ++r)
    for (std::int64_t col = 0; col < side; ++col) {
      const auto patch = x.slice(2, r * a.patch_size, (r + 1) * a.patch_size)
                             .slice(3, col * a.patch_size, (col + 1) * a.patch_size)
                             .reshape({b, -1});
      tokens.push_back(torch::matmul(patch, w.t()) + p["patch_embed.proj.bias"].to(torch::kFloat64));
    }
  auto h = torch::cat({p["cls_token"].to(torch::kFloat64).expand({b, 1, a.width}), torch::stack(tokens, 1)}, 1) +
           p["pos_embed"].to(torch::kFloat64);
  for (auto& item : p) item.value() = item.value().to(torch::kFloat64);
  const auto hd = a.width / a.heads;
  for (std::int64_t i = 0; i < a.depth; ++i) {
    const std::string blk = "blocks." + std::to_string(i) + ".";
    const auto y = layer_norm(h, blk + "norm1");
    const auto qkv = linear(y, blk + "attn.qkv");  // (B, T, 3D): [q heads | k heads | v heads]
    std::vector<torch::Tensor> heads;
    for (std::int64_t head = 0; head < a.heads; ++head) {
      const auto q = qkv.slice(2, head * hd, (head + 1) * hd);
      const auto k = qkv.slice(2, a.width + head * hd, a.width + (head + 1) * hd);
      const auto v = qkv.slice(2, 2 * a.width + head * hd, 2 * a.width + (head + 1) * hd);
      const auto scores = torch::matmul(q, k.transpose(1, 2)) / std::sqrt(static_cast<double>(hd));
      const auto e = (scores - std::get<0>(scores.max(-1, true))).exp();
      heads.push_back(torch::matmul(e / e.sum(-1, true), v));
    }
    h = h + linear(torch::cat(heads, 2), blk + "attn.proj");
    const auto m = linear(layer_norm(h, blk + "norm2"), blk + "mlp.fc1");
    h = h + linear(0.5 * m * (1.0 + torch::erf(m / std::sqrt(2.0))), blk + "mlp.fc2");
  }
  return layer_norm(h, "norm");
}

TEST(ViT, ForwardMatchesAnIndependentPerHeadImplementation) {
  for (std::int64_t chans : {1, 3}) {
    auto a = tiny(chans);
    if (chans == 3) {
      a.mean = {0.4, 0.5, 0.6};
      a.std = {0.2, 0.25, 0.3};
    }
    dne::fm::VisionTransformer vit(a);
    dne::fm::initialise_vit_weights(*vit, 7, 0, a.patches_per_side());
    {
      torch::NoGradGuard ng;  // non-trivial norms and biases so that a wrong mapping shows
      torch::manual_seed(3);
      for (auto& item : vit->named_parameters())
        if (item.value().dim() == 1) item.value().copy_(torch::randn_like(item.value()) * 0.3 + (item.key().find("norm") != std::string::npos ? 1.0 : 0.0));
    }
    torch::manual_seed(5);
    const auto images = torch::rand({3, 1, 16, 16});
    torch::NoGradGuard ng;
    const auto got = vit->forward(images).to(torch::kFloat64);
    const auto want = reference_forward(*vit, images);
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-5) << "in_chans " << chans;
  }
}

TEST(ViT, PoolingSelectsClassTokenOrPatchMean) {
  const auto a = tiny();
  dne::fm::ViTEncoder cls(a, "cls", 3), mean(a, "mean", 3);
  torch::manual_seed(1);
  const auto x = torch::rand({2, 1, 16, 16});
  torch::NoGradGuard ng;
  const auto tokens = cls.module()->forward(x);
  EXPECT_TRUE(torch::equal(cls.forward(x), tokens.select(1, 0)));
  EXPECT_TRUE(torch::allclose(mean.forward(x), tokens.slice(1, 1).sum(1) / 4.0, 1e-6, 1e-6));
  EXPECT_EQ(cls.embed_dim(), 8);
  EXPECT_THROW(dne::fm::ViTEncoder(a, "max", 3), dne::ConfigError);
}

TEST(ViT, GrayscaleReplicationEqualsSummedChannelWeights) {
  // With equal normalisation per channel, replicating a grayscale image to 3 channels is the same
  // as a 1-channel patch embedding whose weight is the sum over the 3 channels.
  auto a3 = tiny(3), a1 = tiny(1);
  dne::fm::VisionTransformer v3(a3), v1(a1);
  dne::fm::initialise_vit_weights(*v3, 11, 0, a3.patches_per_side());
  {
    torch::NoGradGuard ng;
    auto p1 = v1->named_parameters();
    for (auto& item : v3->named_parameters()) {
      if (item.key() == "patch_embed.proj.weight") p1[item.key()].copy_(item.value().sum(1, true));
      else p1[item.key()].copy_(item.value());
    }
  }
  torch::manual_seed(2);
  const auto x = torch::rand({2, 1, 16, 16});
  torch::NoGradGuard ng;
  EXPECT_LT((v3->forward(x) - v1->forward(x)).abs().max().item<double>(), 1e-5);
}

TEST(ViT, SeededWeightsAreReproducibleAndSeedDependent) {
  const auto a = tiny();
  dne::fm::ViTEncoder x(a, "mean", 1), y(a, "mean", 1), z(a, "mean", 2);
  const auto img = torch::rand({2, 1, 16, 16});
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(x.forward(img), y.forward(img)));
  EXPECT_FALSE(torch::equal(x.forward(img), z.forward(img)));
}

TEST(ViT, SincosPositionEmbeddingByHand) {
  // width 4 -> quarter 1, omega = 1: row of patch (r, c) = [sin c, cos c, sin r, cos r]; class row 0.
  const auto e = dne::fm::sincos_position_embedding(4, 2);
  ASSERT_EQ(e.sizes(), (std::vector<std::int64_t>{1, 5, 4}));
  EXPECT_TRUE(torch::equal(e[0][0], torch::zeros({4})));
  const auto r1c0 = e[0][1 + 2 * 1 + 0];
  EXPECT_FLOAT_EQ(r1c0[0].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(r1c0[1].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(r1c0[2].item<float>(), static_cast<float>(std::sin(1.0)));
  EXPECT_FLOAT_EQ(r1c0[3].item<float>(), static_cast<float>(std::cos(1.0)));
}

TEST(FmFile, RoundTripKeepsWeightsAndHash) {
  const auto dir = temp_dir();
  auto a = tiny(3);
  a.mean = {0.4, 0.45, 0.5};
  dne::fm::ViTEncoder enc(a, "cls", 9);
  dne::fm::FmProvenance prov;
  prov.text["source"] = "test";
  prov.loss = {3.0, 2.0};
  const auto path = (dir / "fm.h5").string();
  dne::fm::write_fm_file(path, *enc.module(), prov);
  const auto file = dne::fm::read_fm_file(path);
  EXPECT_EQ(file.hash, dne::fm::content_hash(*enc.module()));
  EXPECT_EQ(file.architecture.canonical_text(), a.canonical_text());
  EXPECT_EQ(file.provenance.at("source"), "test");
  dne::config::FmOptions o;
  o.kind = "vit";
  o.weights = path;
  o.patch_size = 8;
  o.in_chans = 3;
  o.embed_dim = 8;
  o.depth = 2;
  o.heads = 2;
  o.mlp_ratio = 2.0;
  o.pool = "cls";
  o.mean = "0.4,0.45,0.5";
  o.std = "0.25";
  auto loaded = dne::fm::make_model(o, 16, 0);
  const auto x = torch::rand({2, 1, 16, 16});
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(loaded->forward(x), enc.forward(x)));
  EXPECT_EQ(loaded->provenance().at("hash"), file.hash);
  EXPECT_EQ(dne::fm::verify_weights(o, 16), file.hash);

  // Any configured difference names its key.
  auto expect_mismatch = [&](dne::config::FmOptions bad, std::int64_t size, const std::string& key) {
    try {
      dne::fm::verify_weights(bad, size);
      ADD_FAILURE() << "no error for " << key;
    } catch (const dne::ModelError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  auto bad = o;
  bad.depth = 3;
  expect_mismatch(bad, 16, "fm.depth");
  bad = o;
  bad.mean = "0.5";
  expect_mismatch(bad, 16, "fm.mean");
  bad = o;
  bad.heads = 4;
  expect_mismatch(bad, 16, "fm.heads");
  expect_mismatch(o, 32, "data.image_size");

  // A changed weight changes the hash.
  {
    torch::NoGradGuard g;
    enc.module()->named_parameters()["norm.bias"].add_(1e-3);
  }
  EXPECT_NE(dne::fm::content_hash(*enc.module()), file.hash);
  EXPECT_TRUE(dne::remove_tree(dir.string()));  // not std::filesystem::remove_all (core/files.hpp)
}

TEST(FmFile, BrokenFilesAreModelErrorsNamingTheFile) {
  const auto dir = temp_dir();
  dne::fm::ViTEncoder enc(tiny(), "cls", 1);
  const auto good = (dir / "good.h5").string();
  dne::fm::write_fm_file(good, *enc.module(), {});
  const auto size = std::filesystem::file_size(good);
  {
    std::ifstream in(good, std::ios::binary);
    std::string bytes(size / 2, '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    std::ofstream((dir / "half.h5").string(), std::ios::binary) << bytes;
    std::ofstream((dir / "text.h5").string()) << "not hdf5\n";
  }
  {
    dne::store::H5Writer w((dir / "foreign.h5").string());  // HDF5, but not an FM file
    w.attribute("/", "id", std::string("x"));
    w.commit();
  }
  for (const char* name : {"half.h5", "text.h5", "foreign.h5", "absent.h5"}) {
    const auto path = (dir / name).string();
    try {
      dne::fm::read_fm_file(path);
      ADD_FAILURE() << name << " was accepted";
    } catch (const dne::ModelError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(dne::remove_tree(dir.string()));  // not std::filesystem::remove_all (core/files.hpp)
}

}  // namespace
