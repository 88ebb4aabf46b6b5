// What a run's RunConfig (config.hpp: the run-wide keys, read once) becomes on one rank: the
// device, the precision check and the communicator every rank uses.
//
// `run.device`, `run.precision` and `comm.backend` are resolved here, in one place, from the
// config and what this machine has (`DeviceFacts`, gathered by the caller: LibTorch's CUDA, the
// visible devices, whether NCCL was built), so that the rule is a pure function with tests:
//   device   auto -> cuda when LibTorch has CUDA and a device is visible, else cpu (said why);
//            cuda without one -> ConfigError naming run.device (exit 2);
//            each rank takes CUDA device node-local rank % visible devices.
//   backend  auto -> nccl when the device is cuda, NCCL is built, rank groups have more than
//            one rank and every rank of a node can have its own GPU; else mpi (NCCL gains nothing
//            for a group of one, and refuses two ranks on one GPU); nccl without a GPU or without
//            NCCL built -> ConfigError naming comm.backend.
//   precision fp32 anywhere; tf32 and bf16 only on cuda (ConfigError naming run.precision).
//            The precision is an experiment's (in its id: a sweep may compare them); the rest is
//            the run's.
// No Torch, no MPI.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dne/config/config.hpp"

namespace dne::config {

/// What this rank's machine offers (the caller asks LibTorch and the comm module).
struct DeviceFacts {
  bool libtorch_cuda = false;   // LibTorch built with CUDA (torch::cuda::is_available() needs a device too)
  int cuda_devices = 0;         // devices visible to this rank
  bool nccl_built = false;      // the NCCL communicator is compiled in
  int local_ranks = 1;          // ranks of the job on this node
};

/// What the machine makes of a run's RunConfig on one rank (the rest of the RunConfig is used
/// as configured): what `dne run` and `dne bench` use.
struct RunSettings {
  std::string device = "cpu";             // resolved: "cpu" | "cuda"
  int cuda_index = -1;                    // this rank's device when cuda
  std::string backend = "mpi";            // resolved: "mpi" | "nccl"
  std::string reason;                     // one line: what was chosen and why ("cpu (auto: ...)")
};

/// The run-wide keys `run` (config::read_run_config) resolved for the rank with node-local rank
/// `local_rank` on a machine with `facts`. ConfigError naming the key when the config asks for
/// what the machine does not have (every experiment's run.precision is checked against the device).
RunSettings resolve_run_settings(const RunConfig& run, const std::vector<ExperimentConfig>& experiments, int local_rank,
                                 const DeviceFacts& facts);

}  // namespace dne::config
