// This rank's device and the communicator its rank group sums with, as chosen for the run: the
// one object `dne run`, `dne bench` and `dne serve` ask for the Torch device, a rank group's
// communicator (MPI, or NCCL on this device), a synchronisation point and the words /provenance
// uses. The choice itself is config/run_settings.hpp's pure rule (resolve_run_settings) on facts
// the job agrees on (run/device_agreement.hpp). Compiled into dne_torch with tensor_sum.hpp.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>
#include <utility>

#include <torch/torch.h>

#include "dne/comm/communicator.hpp"
#include "dne/config/run_settings.hpp"

namespace dne::comm {

class DeviceChoice {
 public:
  DeviceChoice() = default;  // the CPU, MPI sums
  explicit DeviceChoice(config::RunSettings settings) : settings_(std::move(settings)) {}

  bool cuda() const { return settings_.device == "cuda"; }
  /// This rank's CUDA device (-1 on the CPU).
  int cuda_index() const { return cuda() ? settings_.cuda_index : -1; }
  /// "mpi" | "nccl": how a rank group sums.
  const std::string& backend() const { return settings_.backend; }
  /// One line: what was chosen and why ("cpu (auto: ...)").
  const std::string& reason() const { return settings_.reason; }
  /// Where this rank's tensors live: its CUDA device, or the CPU.
  torch::Device torch_device() const;
  /// The communicator of the ranks of `comm` (caller-owned): NCCL on this rank's device when the
  /// backend is nccl (a sum unfinished after `timeout_s` is a dead peer), MPI otherwise.
  std::unique_ptr<Communicator> communicator(MPI_Comm comm, double timeout_s) const;
  /// Waits for this rank's GPU (a no-op on the CPU), so that a timed region holds its kernels.
  void synchronize() const;
  /// "cpu", or "cuda:0 (NVIDIA H200)": /provenance and the benchmark's header.
  std::string description() const;

 private:
  config::RunSettings settings_;
};

/// LibTorch's CUDA runtime version ("12.1"), or "none" for a CPU LibTorch.
std::string libtorch_cuda_version();

}  // namespace dne::comm
