// MAE masking, decoder and loss (see mae.hpp).
#include "dne/pretrain/mae.hpp"

#include <algorithm>
#include <numeric>

#include "dne/core/random.hpp"

namespace dne::pretrain {

std::vector<std::int64_t> visible_patches(std::uint64_t seed, std::uint32_t step, std::uint32_t image_index,
                                          std::int64_t num_patches, double mask_ratio) {
  CounterStream stream(seed, StreamPurpose::kMasking, step, image_index);
  std::vector<double> noise(static_cast<std::size_t>(num_patches));
  for (auto& u : noise) u = stream.uniform();
  std::vector<std::int64_t> order(noise.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return noise[static_cast<std::size_t>(a)] < noise[static_cast<std::size_t>(b)];
  });
  const auto keep = static_cast<std::int64_t>(static_cast<double>(num_patches) * (1.0 - mask_ratio));
  std::vector<std::int64_t> visible(order.begin(), order.begin() + std::max<std::int64_t>(1, keep));
  std::sort(visible.begin(), visible.end());
  return visible;
}

torch::Tensor patchify(const torch::Tensor& images, std::int64_t patch_size) {
  const auto b = images.size(0), c = images.size(1), side = images.size(2) / patch_size;
  // (B, C, h, p, w, q) -> (B, h, w, p, q, C) -> (B, h*w, p*q*C)
  return images.reshape({b, c, side, patch_size, side, patch_size})
      .permute({0, 2, 4, 3, 5, 1})
      .reshape({b, side * side, patch_size * patch_size * c});
}

MaskedAutoencoderImpl::MaskedAutoencoderImpl(const fm::ViTArchitecture& arch, const DecoderOptions& d) : arch_(arch) {
  encoder = register_module("encoder", fm::VisionTransformer(arch));
  decoder_embed_ = register_module("decoder_embed", torch::nn::Linear(arch.width, d.width));
  mask_token_ = register_parameter("mask_token", torch::zeros({1, 1, d.width}));
  decoder_pos_embed_ = register_parameter("decoder_pos_embed", torch::zeros({1, 1 + arch.num_patches(), d.width}));
  decoder_blocks_ = register_module("decoder_blocks", torch::nn::ModuleList());
  const auto hidden = static_cast<std::int64_t>(d.mlp_ratio * static_cast<double>(d.width));
  for (std::int64_t i = 0; i < d.depth; ++i)
    decoder_blocks_->push_back(fm::TransformerBlock(d.width, d.heads, hidden, arch.layer_norm_eps));
  decoder_norm_ = register_module("decoder_norm",
                                  torch::nn::LayerNorm(torch::nn::LayerNormOptions({d.width}).eps(arch.layer_norm_eps)));
  decoder_pred_ = register_module(
      "decoder_pred", torch::nn::Linear(d.width, arch.patch_size * arch.patch_size * arch.in_chans));
}

torch::Tensor MaskedAutoencoderImpl::loss_per_image(const torch::Tensor& images, const torch::Tensor& visible,
                                                    bool norm_pix_loss) {
  const auto b = images.size(0), n = arch_.num_patches(), k = visible.size(1);
  const auto x = encoder->normalise(images);                                   // (B, C, S, S)
  const auto tokens = encoder->patch_tokens(x);                                // (B, N, D)
  const auto d = tokens.size(2);
  const auto kept = tokens.gather(1, visible.unsqueeze(-1).expand({b, k, d}));  // (B, K, D)
  const auto latent = encoder->encode_tokens(kept);                            // (B, 1 + K, D)

  const auto y = decoder_embed_->forward(latent);                              // (B, 1 + K, Dd)
  const auto dd = y.size(2);
  auto full = mask_token_.expand({b, n, dd}).scatter(1, visible.unsqueeze(-1).expand({b, k, dd}), y.slice(1, 1));
  auto h = torch::cat({y.slice(1, 0, 1), full}, 1) + decoder_pos_embed_;      // (B, 1 + N, Dd)
  for (const auto& block : *decoder_blocks_) h = block->as<fm::TransformerBlock>()->forward(h);
  const auto pred = decoder_pred_->forward(decoder_norm_->forward(h)).slice(1, 1);  // (B, N, P*P*C)

  auto target = patchify(x, arch_.patch_size);                                 // (B, N, P*P*C)
  if (norm_pix_loss) {
    const auto mean = target.mean(-1, true);
    const auto var = target.var(-1, true, true);  // unbiased, as MAE
    target = (target - mean) / (var + 1e-6).sqrt();
  }
  const auto per_patch = (pred - target).pow(2).mean(-1);                      // (B, N)
  auto hidden = torch::ones({b, n}, images.options());
  hidden.scatter_(1, visible, 0.0);                                            // 1 = hidden
  return (per_patch * hidden).sum(1) / static_cast<double>(n - k);             // (B)
}

}  // namespace dne::pretrain
