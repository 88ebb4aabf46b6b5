// Masked-autoencoder (MAE) pretraining of the built-in ViT: masking, light decoder, loss.
//
// The encoder is the project's `VisionTransformer` (timm layout); the decoder follows MAE's
// names (`decoder_embed`, `mask_token`, `decoder_pos_embed`, `decoder_blocks.N`, `decoder_norm`,
// `decoder_pred`). For each image a fixed share of its patches is hidden; the encoder sees only
// the visible ones (plus the class token), the decoder sees encoded visible tokens and a shared
// mask token at every hidden position, and predicts every patch's pixels. The loss is the mean
// squared error on the hidden patches, against targets normalised per patch (mean 0, variance 1)
// when norm_pix_loss is set. Which patches are hidden is a function of (seed, step, image index)
// only, so any split of a batch over ranks sees the same masks.
#pragma once

#include <cstdint>
#include <vector>

#include "dne/fm/vit_encoder.hpp"

namespace dne::pretrain {

struct DecoderOptions {
  // Defaults: the [pretrain] keys' (config::defaults(), the one place they are written).
  std::int64_t width = config::defaults().pretrain.decoder_width;
  std::int64_t depth = config::defaults().pretrain.decoder_depth;
  std::int64_t heads = config::defaults().pretrain.decoder_heads;
  double mlp_ratio = 4.0;  // MAE's (no key)
};

/// Indices of the visible patches of image `image_index` at optimiser step `step`, ascending:
/// the int(N * (1 - mask_ratio)) patches with the smallest uniforms drawn from
/// CounterStream(seed, kMasking, step, image_index) (MAE's noise-argsort masking).
std::vector<std::int64_t> visible_patches(std::uint64_t seed, std::uint32_t step, std::uint32_t image_index,
                                          std::int64_t num_patches, double mask_ratio);

/// Images (B, C, S, S) -> patches (B, N, P * P * C) in row-major patch order, pixel order (p, q, c)
/// inside a patch (MAE's patchify).
torch::Tensor patchify(const torch::Tensor& images, std::int64_t patch_size);

class MaskedAutoencoderImpl : public torch::nn::Module {
 public:
  MaskedAutoencoderImpl(const fm::ViTArchitecture& arch, const DecoderOptions& decoder);
  /// Per-image loss (B) for grayscale images (B, 1, S, S) whose visible patches are `visible`
  /// (B, K) int64: mean over hidden patches of the per-patch mean squared error.
  torch::Tensor loss_per_image(const torch::Tensor& images, const torch::Tensor& visible, bool norm_pix_loss);
  fm::VisionTransformer encoder{nullptr};

 private:
  fm::ViTArchitecture arch_;
  torch::nn::Linear decoder_embed_{nullptr}, decoder_pred_{nullptr};
  torch::Tensor mask_token_, decoder_pos_embed_;  // (1, 1, Dd), (1, 1 + N, Dd)
  torch::nn::ModuleList decoder_blocks_{nullptr};
  torch::nn::LayerNorm decoder_norm_{nullptr};
};
TORCH_MODULE(MaskedAutoencoder);

}  // namespace dne::pretrain
