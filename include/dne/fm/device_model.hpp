// An in-process FM whose forwards run on a GPU (`run.device = "cuda"`), at `run.precision`.
//
// `on_device` moves the model's weights to the device once and wraps it: every forward moves its
// input batch (B, 1, H, W) to the device (from page-locked host memory when the batch needs no
// gradient: an asynchronous copy), runs the model there under the precision, and returns the
// embeddings (B, D) as float32 on the host, so everything downstream (editors, probes, metrics)
// is unchanged. The copies are differentiable: white-box DNE's gradient reaches its host noise.
// Precision: fp32 turns TF32 off for matmuls and convolutions (cuDNN allows it by default);
// tf32 turns it on (both process-wide, set when the model is placed, so a white-box backward
// runs at the same precision); bf16 runs each forward under CUDA autocast with bfloat16 (the
// autograd of that region follows it; LibTorch's autocast API differs between 1.x and 2.4+, both
// are handled). The editors and probes stay fp32.
#pragma once

#include <memory>
#include <string>

#include "dne/fm/foundation_model.hpp"

namespace dne::fm {

/// `model` on `device` (a CUDA device) at `precision` ("fp32", "tf32", "bf16"). ModelError when
/// the model cannot move there.
std::shared_ptr<DifferentiableModel> on_device(std::shared_ptr<DifferentiableModel> model, const torch::Device& device,
                                               const std::string& precision);

}  // namespace dne::fm
