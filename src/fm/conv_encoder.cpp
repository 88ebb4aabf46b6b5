// Built-in frozen CNN encoder (see conv_encoder.hpp).
#include "dne/fm/conv_encoder.hpp"

#include <cmath>
#include <sstream>

#include "dne/core/random.hpp"

namespace dne::fm {

ConvEncoder::ConvEncoder(std::int64_t image_size, std::int64_t width, std::int64_t embed_dim,
                         std::uint64_t seed)
    : image_size_(image_size), width_(width), embed_dim_(embed_dim) {
  namespace nn = torch::nn;
  features_ = nn::Sequential();
  std::int64_t in = 1, side = image_size;
  for (int stage = 0; stage < 4; ++stage) {
    const std::int64_t out = width << stage;
    features_->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(2).padding(1).bias(false)));
    features_->push_back(nn::ReLU());
    side = (side + 1) / 2;
    flops_ += 2.0 * static_cast<double>(side * side * 9 * in * out);
    features_->push_back(nn::Conv2d(nn::Conv2dOptions(out, out, 3).stride(1).padding(1).bias(false)));
    features_->push_back(nn::ReLU());
    flops_ += 2.0 * static_cast<double>(side * side * 9 * out * out);
    in = out;
  }
  features_->push_back(nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({2, 2})));
  head_ = nn::Linear(nn::LinearOptions(in * 4, embed_dim).bias(false));
  flops_ += 2.0 * static_cast<double>(in * 4 * embed_dim);

  // Deterministic Kaiming-normal weights from the counter-based stream, then freeze.
  torch::NoGradGuard no_grad;
  std::uint32_t index = 0;
  auto init = [&](torch::Tensor& w, bool relu) {
    const double fan_in = static_cast<double>(w.numel() / w.size(0));
    const float stddev = static_cast<float>(std::sqrt((relu ? 2.0 : 1.0) / fan_in));
    std::vector<float> values(static_cast<std::size_t>(w.numel()));
    CounterStream stream(seed, StreamPurpose::kModelInit, 0, index++);
    stream.fill_normal(values.data(), values.size(), stddev);
    w.copy_(torch::from_blob(values.data(), w.sizes(), torch::kFloat32));
    w.set_requires_grad(false);
  };
  for (auto& p : features_->parameters()) init(p, true);
  for (auto& p : head_->parameters()) init(p, false);
  features_->eval();
  head_->eval();
}

torch::Tensor ConvEncoder::forward(const torch::Tensor& images) {
  // (B, 1, S, S) -> normalise -> (B, 8w, 2, 2) -> (B, 32w) -> (B, D)
  const auto x = (images - 0.5) / 0.25;
  return head_->forward(features_->forward(x).flatten(1));
}

std::int64_t ConvEncoder::parameter_count() const {
  std::int64_t n = 0;
  for (const auto& p : features_->parameters()) n += p.numel();
  for (const auto& p : head_->parameters()) n += p.numel();
  return n;
}

std::string ConvEncoder::describe() const {
  std::ostringstream out;
  out << "cnn(width=" << width_ << ", embed_dim=" << embed_dim_ << ", image=" << image_size_
      << "x" << image_size_ << ", params=" << parameter_count()
      << ", MFLOP/image=" << flops_ / 1e6 << ")";
  return out.str();
}

void ConvEncoder::to(const torch::Device& device) {
  features_->to(device);
  head_->to(device);
}

}  // namespace dne::fm
