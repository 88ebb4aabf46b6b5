// The built-in Vision Transformer foundation model, laid out exactly as timm's VisionTransformer.
//
// `VisionTransformer` is a LibTorch module whose parameter names and shapes equal timm's
// (`cls_token`, `pos_embed`, `patch_embed.proj.weight`, `blocks.N.attn.qkv.weight`,
// `blocks.N.mlp.fc1.weight`, `norm.weight`, ...; docs/fm-file.md), so that a timm or MAE
// checkpoint maps one to one. Forward: grayscale (B, 1, S, S) in [0, 1] -> replicated to C
// channels and normalised -> P x P patches (B, N, D) -> class token + position embeddings
// (B, 1 + N, D) -> `depth` pre-norm blocks (fused-qkv attention, exact-GELU MLP) -> final norm.
// `ViTEncoder` wraps it as a frozen `DifferentiableModel` (pool "cls" or "mean"); its weights are
// either deterministic draws from the counter-based stream or an FM file. The MAE pretrainer
// (pretrain/) reuses the blocks and the token functions.
#pragma once

#include <cmath>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "dne/fm/foundation_model.hpp"

namespace dne::fm {

/// Everything that fixes the ViT's parameter shapes and its input normalisation.
struct ViTArchitecture {
  // Defaults: the [data] and [fm] keys' (config::defaults(), the one place they are written).
  std::int64_t image_size = config::defaults().data.image_size;
  std::int64_t patch_size = config::defaults().fm.patch_size;
  std::int64_t in_chans = config::defaults().fm.in_chans;
  std::int64_t width = config::defaults().fm.embed_dim;
  std::int64_t depth = config::defaults().fm.depth;
  std::int64_t heads = config::defaults().fm.heads;
  double mlp_ratio = config::defaults().fm.mlp_ratio;
  double layer_norm_eps = 1e-6;  // timm's and MAE's ViTs (no key)
  // One value per input channel:
  std::vector<double> mean = config::channel_values(config::defaults().fm.mean, in_chans, "fm.mean");
  std::vector<double> std = config::channel_values(config::defaults().fm.std, in_chans, "fm.std");

  std::int64_t patches_per_side() const { return image_size / patch_size; }
  std::int64_t num_patches() const { return patches_per_side() * patches_per_side(); }
  std::int64_t mlp_hidden() const { return std::llround(mlp_ratio * static_cast<double>(width)); }
  /// Multiply-add FLOPs (x2) of one forward pass on one image: patch embedding, qkv, attention
  /// scores and weighted sum, projection, MLP. Norms, softmax and GELU are not counted.
  double flops_per_image() const;
  /// One line per field, fixed format: the architecture part of the FM file's content hash.
  std::string canonical_text() const;
  /// The architecture the config's fm.* keys describe at `image_size` (ConfigError if invalid).
  static ViTArchitecture from_config(const config::FmOptions& options, std::int64_t image_size);
};

/// Multi-head self-attention with one fused qkv projection (timm's `Attention`).
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(std::int64_t width, std::int64_t heads);
  torch::Tensor forward(const torch::Tensor& x);  // (B, T, D) -> (B, T, D)

 private:
  std::int64_t heads_;
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr};
};
TORCH_MODULE(Attention);

/// fc1 -> exact GELU -> fc2 (timm's `Mlp`).
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(std::int64_t width, std::int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x);  // (B, T, D) -> (B, T, D)

 private:
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(Mlp);

/// One pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)).
class TransformerBlockImpl : public torch::nn::Module {
 public:
  TransformerBlockImpl(std::int64_t width, std::int64_t heads, std::int64_t mlp_hidden, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // (B, T, D) -> (B, T, D)

 private:
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  Attention attn_{nullptr};
  Mlp mlp_{nullptr};
};
TORCH_MODULE(TransformerBlock);

/// The P x P patch projection (timm's `PatchEmbed`: a convolution named `proj`).
class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(std::int64_t in_chans, std::int64_t width, std::int64_t patch_size);
  torch::Tensor forward(const torch::Tensor& x);  // (B, C, S, S) -> (B, N, D)

 private:
  torch::nn::Conv2d proj_{nullptr};
};
TORCH_MODULE(PatchEmbed);

class VisionTransformerImpl : public torch::nn::Module {
 public:
  explicit VisionTransformerImpl(ViTArchitecture arch);
  /// Grayscale (B, 1, S, S) in [0, 1] -> normalised (B, C, S, S) (replicated channels).
  torch::Tensor normalise(const torch::Tensor& images) const;
  /// (B, C, S, S) -> patch tokens with position embeddings, no class token: (B, N, D).
  torch::Tensor patch_tokens(const torch::Tensor& x);
  /// Prepend the class token (+ its position embedding) to tokens (B, T, D) -> (B, 1 + T, D),
  /// run the blocks and the final norm.
  torch::Tensor encode_tokens(const torch::Tensor& tokens);
  /// Grayscale images (B, 1, S, S) -> final-normed tokens (B, 1 + N, D).
  torch::Tensor forward(const torch::Tensor& images);
  const ViTArchitecture& architecture() const { return arch_; }

  torch::Tensor cls_token, pos_embed;  // (1, 1, D), (1, 1 + N, D)

 private:
  ViTArchitecture arch_;
  torch::Tensor mean_, std_;  // (1, C, 1, 1), on the CPU; not registered buffers (the FM hash covers parameters only)
  /// mean_ and std_ on the device of the last forward: copied once per device, not once per
  /// forward (a pageable host-to-device copy synchronises the stream: once per GeZO candidate).
  mutable std::mutex normalisation_mutex_;
  mutable torch::Tensor mean_on_device_, std_on_device_;
  PatchEmbed patch_embed_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
};
TORCH_MODULE(VisionTransformer);

/// 2-D sine-cosine position embedding of MAE for a (side x side) grid plus a zero class-token
/// row: (1, 1 + side^2, width). width must be a multiple of 4.
torch::Tensor sincos_position_embedding(std::int64_t width, std::int64_t side);

/// Deterministic initial weights for a ViT-layout module: matrices (Linear, Conv) xavier-uniform
/// and class/mask tokens N(0, 0.02^2) from CounterStream(seed, kModelInit, stream_step, k) in
/// parameter-name order; biases 0; LayerNorm weights 1; `pos_embed`-named parameters get the
/// 2-D sine-cosine embedding (fixed, as in MAE).
void initialise_vit_weights(torch::nn::Module& module, std::uint64_t seed, std::uint32_t stream_step,
                            std::int64_t patches_per_side);

/// The frozen ViT as a foundation model.
class ViTEncoder : public DifferentiableModel {
 public:
  /// Random (seeded) weights.
  ViTEncoder(const ViTArchitecture& arch, const std::string& pool, std::uint64_t seed);
  /// Trained weights; `source` says where they came from (describe()), `provenance` goes to the
  /// experiment's /provenance as fm_<key>.
  ViTEncoder(VisionTransformer vit, const std::string& pool, std::string source,
             std::map<std::string, std::string> provenance);
  torch::Tensor forward(const torch::Tensor& images) override;  // (B, 1, S, S) -> (B, D)
  std::int64_t embed_dim() const override { return vit_->architecture().width; }
  std::string describe() const override;
  double flops_per_image() const override { return vit_->architecture().flops_per_image(); }
  std::int64_t parameter_count() const override;
  std::map<std::string, std::string> provenance() const override { return provenance_; }
  void to(const torch::Device& device) override { vit_->to(device); }
  VisionTransformer& module() { return vit_; }

 private:
  void freeze();
  VisionTransformer vit_{nullptr};
  std::string pool_, source_;
  std::map<std::string, std::string> provenance_;
};

}  // namespace dne::fm
