// AdamW with explicit, checkpointable state, and MAE's learning-rate schedule.
//
// The update is LibTorch's AdamW step for step (decoupled decay p *= 1 - lr * wd, then the Adam
// step with bias corrections computed in double), written out here so that the moment buffers
// and the step count can be saved to and restored from a pretraining checkpoint exactly: a
// resumed run continues bit for bit. Parameters with `decay = false` (biases, norms, tokens)
// get no weight decay.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "dne/config/config.hpp"

namespace dne::pretrain {

class AdamW {
 public:
  struct Param {
    torch::Tensor value;  // updated in place (no autograd)
    bool decay = true;
    torch::Tensor m, v;   // first and second moments, same shape as value
  };
  AdamW(std::vector<torch::Tensor> params, std::vector<bool> decay, double beta1 = 0.9, double beta2 = 0.95,
        double eps = 1e-8);
  /// One step with gradients `grads` (same order and shapes as the parameters).
  void step(const std::vector<torch::Tensor>& grads, double lr, double weight_decay);
  std::vector<Param>& params() { return params_; }
  std::int64_t steps_taken() const { return t_; }
  void set_steps_taken(std::int64_t t) { t_ = t; }

 private:
  std::vector<Param> params_;
  double beta1_, beta2_, eps_;
  std::int64_t t_ = 0;
};

/// Learning rate of optimiser step `step` (0-based): linear warm-up lr * (step + 1) / warmup over
/// the first `warmup_steps` steps, then half-cosine decay from lr to 0 at `steps`.
double learning_rate(const config::PretrainOptions& options, std::int64_t step);

}  // namespace dne::pretrain
