// Group sums of Torch tensors wherever they live.
//
// The editors keep their loss slots (E,) and gradient estimates (H, W) on the experiment's device
// (run.device). A CPU tensor goes to the communicator's host sum; a CUDA tensor goes to its
// device sum when the communicator has one (NCCL, and one rank alone: no copies at all), else it
// is staged through the host (MPI: one copy each way). Part of dne_torch; comm itself stays
// Torch-free (communicator.hpp).
#pragma once

#include <torch/torch.h>

#include "dne/comm/communicator.hpp"

namespace dne::comm {

/// In-place group sum of `t`: contiguous float32 or float64 (else CommError), on the CPU or on
/// the rank's CUDA device. Every rank of `group` calls it with the same shape and dtype.
void allreduce_sum(Communicator& group, torch::Tensor& t);

}  // namespace dne::comm
