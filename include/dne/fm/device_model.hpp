// An in-process FM whose forwards run on a GPU (`run.device = "cuda"`), at `run.precision`.
//
// `on_device` moves the model's weights to the device once and wraps it: a forward runs the model
// there under the precision and returns the embeddings (B, D) as float32 on the device its input
// came from. The editors hand it batches already on the GPU (EditProblem::device), so nothing
// crosses to the host inside their loops; host batches (the clean and final embeddings, which
// are stored) move over from page-locked memory (an asynchronous copy) and come back. The
// copies are differentiable.
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
