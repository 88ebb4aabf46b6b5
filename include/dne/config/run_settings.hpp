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
  /// Every rank group's ranks would use distinct physical GPUs (gpus_distinct_within_groups over
  /// the job's (host, PCI bus id) placement): what NCCL needs, whatever each rank sees.
  bool group_gpus_distinct = false;
};

/// Whether, for every group of `ranks_per_group` consecutive world ranks (leftover ranks take no
/// experiment and are ignored), no two ranks use the same GPU: `placement[r]` is world rank r's
/// "host/PCI bus id", "" when it has no device (then false). One visible device per rank
/// (CUDA_VISIBLE_DEVICES, Slurm --gpus-per-task=1) is distinct as long as the bus ids differ.
bool gpus_distinct_within_groups(const std::vector<std::string>& placement, int ranks_per_group);

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
