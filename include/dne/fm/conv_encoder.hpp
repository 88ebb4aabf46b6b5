// The built-in foundation model: a frozen, randomly initialised convolutional encoder.
//
// Four stages of [3x3 conv stride 2, ReLU, 3x3 conv stride 1, ReLU] with width w, 2w, 4w, 8w
// channels take (B, 1, S, S) to (B, 8w, S/16, S/16); adaptive average pooling to 2x2 and a
// linear map give (B, D). Weights are Kaiming-normal draws from the counter-based stream
// (seed, kModelInit, 0, tensor index): the same seed gives the same bits on every machine.
#pragma once

#include "dne/fm/foundation_model.hpp"

namespace dne::fm {

class ConvEncoder : public DifferentiableModel {
 public:
  ConvEncoder(std::int64_t image_size, std::int64_t width, std::int64_t embed_dim,
              std::uint64_t seed);
  torch::Tensor forward(const torch::Tensor& images) override;
  std::int64_t embed_dim() const override { return embed_dim_; }
  std::string describe() const override;
  double flops_per_image() const override { return flops_; }
  std::int64_t parameter_count() const override;
  void to(const torch::Device& device) override;

 private:
  std::int64_t image_size_, width_, embed_dim_;
  double flops_ = 0.0;
  torch::nn::Sequential features_{nullptr};
  torch::nn::Linear head_{nullptr};
};

}  // namespace dne::fm
