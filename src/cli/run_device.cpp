// The run's device, chosen alike on every rank (see run_device.hpp).
#include "dne/cli/run_device.hpp"

#include <mpi.h>
#include <torch/torch.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include "dne/comm/nccl_communicator.hpp"
#include "dne/core/errors.hpp"
#include "dne/sweep/scheduler.hpp"

namespace dne::cli {

std::string libtorch_cuda_version() {
  try {
    const long v = at::detail::getCUDAHooks().versionCUDART();
    return v > 0 ? std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10) : "none";
  } catch (const std::exception&) {  // a CPU LibTorch cannot answer
    return "none";
  }
}

config::RunSettings agreed_run_settings(const config::RunConfig& run, const std::vector<config::ExperimentConfig>& experiments,
                                        const ProcessInfo& process) {
  config::DeviceFacts facts;
  facts.libtorch_cuda = libtorch_cuda_version() != "none";
  facts.cuda_devices = facts.libtorch_cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
  facts.nccl_built = comm::nccl_built();
  facts.local_ranks = process.local_size;
  // [libtorch_cuda, devices, nccl_built, -local_ranks]: the job's minimum of each.
  int agreed[4] = {facts.libtorch_cuda ? 1 : 0, facts.cuda_devices, facts.nccl_built ? 1 : 0, -facts.local_ranks};
  MPI_Allreduce(MPI_IN_PLACE, agreed, 4, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (run.device != "cuda") {  // "cuda" is checked per rank: the lacking rank names itself
    facts.libtorch_cuda = agreed[0] == 1;
    facts.cuda_devices = agreed[1];
  }
  facts.nccl_built = agreed[2] == 1;
  facts.local_ranks = -agreed[3];
  config::RunSettings settings;
  std::string error;
  try {
    settings = config::resolve_run_settings(run, experiments, process.local_rank, facts);
  } catch (const ConfigError& e) {
    error = e.what();
  }
  int failing = error.empty() ? process.world_size : process.rank;
  MPI_Allreduce(MPI_IN_PLACE, &failing, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (failing == process.world_size) {
    // Nodes with different device counts can differ on NCCL: then every rank takes MPI.
    int nccl = settings.backend == "nccl" ? 1 : 0;
    MPI_Allreduce(MPI_IN_PLACE, &nccl, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (nccl == 0) settings.backend = "mpi";
    return settings;
  }
  if (process.world_size > 1) sweep::broadcast_politely(MPI_COMM_WORLD, error, failing);
  throw PreflightError(error + (process.world_size > 1 ? " (on rank " + std::to_string(failing) + ")" : ""), "config error", 2);
}

std::string device_description(const config::RunSettings& settings) {
  if (settings.device != "cuda") return "cpu";
  const std::string name = comm::cuda_device_name(settings.cuda_index);
  return "cuda:" + std::to_string(settings.cuda_index) + (name.empty() ? "" : " (" + name + ")");
}

}  // namespace dne::cli
