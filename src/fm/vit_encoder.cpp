// Built-in Vision Transformer (see vit_encoder.hpp).
#include "dne/fm/vit_encoder.hpp"

#include <cmath>
#include <sstream>

#include "dne/core/errors.hpp"
#include "dne/core/random.hpp"

namespace dne::fm {

double ViTArchitecture::flops_per_image() const {
  const double n = static_cast<double>(num_patches()), t = n + 1.0, d = static_cast<double>(width);
  const double c = static_cast<double>(in_chans), p = static_cast<double>(patch_size);
  const double hidden = static_cast<double>(mlp_hidden());
  const double patch_embed = 2.0 * n * (c * p * p) * d;
  const double per_block = 2.0 * t * d * 3.0 * d    // qkv
                           + 2.0 * t * t * d        // q k^T over all heads
                           + 2.0 * t * t * d        // attention-weighted sum of v
                           + 2.0 * t * d * d        // output projection
                           + 2.0 * t * d * hidden * 2.0;  // fc1 + fc2
  return patch_embed + static_cast<double>(depth) * per_block;
}

std::string ViTArchitecture::canonical_text() const {
  std::ostringstream out;
  out.precision(17);
  out << "image_size=" << image_size << "\npatch_size=" << patch_size << "\nin_chans=" << in_chans
      << "\nwidth=" << width << "\ndepth=" << depth << "\nheads=" << heads << "\nmlp_ratio=" << mlp_ratio
      << "\nlayer_norm_eps=" << layer_norm_eps << "\nmean=";
  for (double m : mean) out << m << ",";
  out << "\nstd=";
  for (double s : std) out << s << ",";
  out << "\n";
  return out.str();
}

ViTArchitecture ViTArchitecture::from_config(const config::FmOptions& o, std::int64_t image_size) {
  ViTArchitecture a;
  a.image_size = image_size;
  a.patch_size = o.patch_size;
  a.in_chans = o.in_chans;
  a.width = o.embed_dim;
  a.depth = o.depth;
  a.heads = o.heads;
  a.mlp_ratio = o.mlp_ratio;
  a.mean = config::channel_values(o.mean, o.in_chans, "fm.mean");
  a.std = config::channel_values(o.std, o.in_chans, "fm.std");
  if (image_size % o.patch_size != 0)
    throw ConfigError("image size " + std::to_string(image_size) + " is not a multiple of fm.patch_size = " +
                      std::to_string(o.patch_size));
  if (o.embed_dim % o.heads != 0)
    throw ConfigError("fm.heads = " + std::to_string(o.heads) + " does not divide fm.embed_dim = " +
                      std::to_string(o.embed_dim));
  return a;
}

// --- layers ---------------------------------------------------------------------------------

AttentionImpl::AttentionImpl(std::int64_t width, std::int64_t heads) : heads_(heads) {
  qkv_ = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(width, 3 * width)));
  proj_ = register_module("proj", torch::nn::Linear(torch::nn::LinearOptions(width, width)));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x) {
  const auto b = x.size(0), t = x.size(1), d = x.size(2), hd = d / heads_;
  // (B, T, 3D) -> (3, B, heads, T, hd)
  const auto qkv = qkv_->forward(x).reshape({b, t, 3, heads_, hd}).permute({2, 0, 3, 1, 4});
  const auto q = qkv[0] * (1.0 / std::sqrt(static_cast<double>(hd))), k = qkv[1], v = qkv[2];
  const auto attn = torch::matmul(q, k.transpose(-2, -1)).softmax(-1);  // (B, heads, T, T)
  return proj_->forward(torch::matmul(attn, v).transpose(1, 2).reshape({b, t, d}));
}

MlpImpl::MlpImpl(std::int64_t width, std::int64_t hidden) {
  fc1_ = register_module("fc1", torch::nn::Linear(torch::nn::LinearOptions(width, hidden)));
  fc2_ = register_module("fc2", torch::nn::Linear(torch::nn::LinearOptions(hidden, width)));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) { return fc2_->forward(torch::gelu(fc1_->forward(x))); }

TransformerBlockImpl::TransformerBlockImpl(std::int64_t width, std::int64_t heads, std::int64_t mlp_hidden,
                                           double eps) {
  norm1_ = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps)));
  attn_ = register_module("attn", Attention(width, heads));
  norm2_ = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps)));
  mlp_ = register_module("mlp", Mlp(width, mlp_hidden));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x) {
  const auto y = x + attn_->forward(norm1_->forward(x));
  return y + mlp_->forward(norm2_->forward(y));
}

PatchEmbedImpl::PatchEmbedImpl(std::int64_t in_chans, std::int64_t width, std::int64_t patch_size) {
  proj_ = register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_chans, width, patch_size).stride(patch_size)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& x) {
  return proj_->forward(x).flatten(2).transpose(1, 2);  // (B, D, S/P, S/P) -> (B, N, D)
}

// --- the transformer --------------------------------------------------------------------------

VisionTransformerImpl::VisionTransformerImpl(ViTArchitecture arch) : arch_(std::move(arch)) {
  const auto d = arch_.width;
  if (static_cast<std::int64_t>(arch_.mean.size()) != arch_.in_chans ||
      static_cast<std::int64_t>(arch_.std.size()) != arch_.in_chans)
    throw ConfigError("ViT normalisation needs one mean and one std per input channel");
  // Parameters are registered in timm's state-dict order.
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, d}));
  pos_embed = register_parameter("pos_embed", torch::zeros({1, 1 + arch_.num_patches(), d}));
  patch_embed_ = register_module("patch_embed", PatchEmbed(arch_.in_chans, d, arch_.patch_size));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < arch_.depth; ++i)
    blocks_->push_back(TransformerBlock(d, arch_.heads, arch_.mlp_hidden(), arch_.layer_norm_eps));
  norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(arch_.layer_norm_eps)));
  mean_ = torch::tensor(arch_.mean, torch::kFloat64).to(torch::kFloat32).reshape({1, arch_.in_chans, 1, 1});
  std_ = torch::tensor(arch_.std, torch::kFloat64).to(torch::kFloat32).reshape({1, arch_.in_chans, 1, 1});
}

torch::Tensor VisionTransformerImpl::normalise(const torch::Tensor& images) const {
  const auto x = arch_.in_chans == 1 ? images : images.expand({images.size(0), arch_.in_chans, images.size(2), images.size(3)});
  torch::Tensor mean, std;
  {
    std::lock_guard<std::mutex> lock(normalisation_mutex_);  // `dne serve --model-workers N` forwards concurrently
    if (!mean_on_device_.defined() || mean_on_device_.device() != x.device()) {
      mean_on_device_ = mean_.to(x.device());
      std_on_device_ = std_.to(x.device());
    }
    mean = mean_on_device_;
    std = std_on_device_;
  }
  return (x - mean) / std;
}

torch::Tensor VisionTransformerImpl::patch_tokens(const torch::Tensor& x) {
  return patch_embed_->forward(x) + pos_embed.slice(1, 1);
}

torch::Tensor VisionTransformerImpl::encode_tokens(const torch::Tensor& tokens) {
  const auto cls = (cls_token + pos_embed.slice(1, 0, 1)).expand({tokens.size(0), 1, arch_.width});
  auto x = torch::cat({cls, tokens}, 1);
  for (const auto& block : *blocks_) x = block->as<TransformerBlock>()->forward(x);
  return norm_->forward(x);
}

torch::Tensor VisionTransformerImpl::forward(const torch::Tensor& images) {
  if (images.dim() != 4 || images.size(1) != 1 || images.size(2) != arch_.image_size ||
      images.size(3) != arch_.image_size)
    throw ModelError("ViT expects grayscale images (B, 1, " + std::to_string(arch_.image_size) + ", " +
                     std::to_string(arch_.image_size) + "), got " + c10::str(images.sizes()));
  return encode_tokens(patch_tokens(normalise(images)));
}

torch::Tensor sincos_position_embedding(std::int64_t width, std::int64_t side) {
  if (width % 4 != 0) throw ConfigError("sine-cosine position embedding needs a width divisible by 4, got " +
                                        std::to_string(width));
  // MAE's get_2d_sincos_pos_embed: the first half of the channels encodes the column, the second
  // the row; each half is [sin(pos * omega), cos(pos * omega)], omega_i = 10000^(-i / (width/4)).
  const auto quarter = width / 4;
  std::vector<float> out(static_cast<std::size_t>((1 + side * side) * width), 0.0f);
  for (std::int64_t r = 0; r < side; ++r)
    for (std::int64_t c = 0; c < side; ++c) {
      float* row = out.data() + (1 + r * side + c) * width;
      for (int half = 0; half < 2; ++half) {
        const double pos = half == 0 ? static_cast<double>(c) : static_cast<double>(r);
        for (std::int64_t i = 0; i < quarter; ++i) {
          const double omega = 1.0 / std::pow(10000.0, static_cast<double>(i) / static_cast<double>(quarter));
          row[half * 2 * quarter + i] = static_cast<float>(std::sin(pos * omega));
          row[half * 2 * quarter + quarter + i] = static_cast<float>(std::cos(pos * omega));
        }
      }
    }
  return torch::from_blob(out.data(), {1, 1 + side * side, width}, torch::kFloat32).clone();
}

namespace {
bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
}  // namespace

void initialise_vit_weights(torch::nn::Module& module, std::uint64_t seed, std::uint32_t stream_step,
                            std::int64_t patches_per_side) {
  torch::NoGradGuard no_grad;
  std::uint32_t index = 0;
  for (auto& item : module.named_parameters()) {
    const std::string& name = item.key();
    auto& p = item.value();
    std::vector<float> values(static_cast<std::size_t>(p.numel()), 0.0f);
    CounterStream stream(seed, StreamPurpose::kModelInit, stream_step, index++);
    if (ends_with(name, "pos_embed")) {
      p.copy_(sincos_position_embedding(p.size(2), patches_per_side));
      continue;
    }
    if (ends_with(name, "cls_token") || ends_with(name, "mask_token")) {
      stream.fill_normal(values.data(), values.size(), 0.02f);
    } else if (p.dim() >= 2) {  // Linear / Conv weight: xavier-uniform on (out, fan_in), as MAE
      const double fan_out = static_cast<double>(p.size(0)), fan_in = static_cast<double>(p.numel()) / fan_out;
      const double a = std::sqrt(6.0 / (fan_in + fan_out));
      for (auto& v : values) v = static_cast<float>(stream.uniform(-a, a));
    } else if (ends_with(name, "weight")) {  // LayerNorm scale
      std::fill(values.begin(), values.end(), 1.0f);
    }  // biases stay 0
    p.copy_(torch::from_blob(values.data(), p.sizes(), torch::kFloat32));
  }
}

// --- the frozen foundation model ----------------------------------------------------------------

ViTEncoder::ViTEncoder(const ViTArchitecture& arch, const std::string& pool, std::uint64_t seed)
    : vit_(VisionTransformer(arch)), pool_(pool), source_("random (seed " + std::to_string(seed) + ")"),
      provenance_{{"weights", "random"}} {
  initialise_vit_weights(*vit_, seed, 0, arch.patches_per_side());
  freeze();
}

ViTEncoder::ViTEncoder(VisionTransformer vit, const std::string& pool, std::string source,
                       std::map<std::string, std::string> provenance)
    : vit_(std::move(vit)), pool_(pool), source_(std::move(source)), provenance_(std::move(provenance)) {
  freeze();
}

void ViTEncoder::freeze() {
  if (pool_ != "cls" && pool_ != "mean") throw ConfigError("fm.pool: \"" + pool_ + "\" is not one of: cls, mean");
  for (auto& p : vit_->parameters()) p.set_requires_grad(false);
  vit_->eval();
}

torch::Tensor ViTEncoder::forward(const torch::Tensor& images) {
  const auto tokens = vit_->forward(images);  // (B, 1 + N, D)
  if (pool_ == "cls") return tokens.select(1, 0);
  return tokens.slice(1, 1).mean(1);
}

std::int64_t ViTEncoder::parameter_count() const {
  std::int64_t n = 0;
  for (const auto& p : vit_->parameters()) n += p.numel();
  return n;
}

std::string ViTEncoder::describe() const {
  const auto& a = vit_->architecture();
  std::ostringstream out;
  out << "vit(patch=" << a.patch_size << ", width=" << a.width << ", depth=" << a.depth << ", heads=" << a.heads
      << ", mlp_ratio=" << a.mlp_ratio << ", in_chans=" << a.in_chans << ", image=" << a.image_size << "x"
      << a.image_size << ", pool=" << pool_ << ", params=" << parameter_count()
      << ", MFLOP/image=" << a.flops_per_image() / 1e6 << ", weights=" << source_ << ")";
  return out.str();
}

}  // namespace dne::fm
