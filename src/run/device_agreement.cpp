// The run's device, chosen alike on every rank (see device_agreement.hpp).
#include "dne/run/device_agreement.hpp"

#include <mpi.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <torch/torch.h>

#include "dne/comm/nccl_communicator.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/host.hpp"
#include "dne/sweep/scheduler.hpp"

namespace dne::run {

comm::DeviceChoice agreed_device_choice(const config::RunConfig& run, const std::vector<config::ExperimentConfig>& experiments,
                                        const ProcessInfo& process) {
  config::DeviceFacts facts;
  facts.libtorch_cuda = comm::libtorch_cuda_version() != "none";
  facts.cuda_devices = facts.libtorch_cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
  facts.nccl_built = comm::nccl_built();
  // [libtorch_cuda, devices, nccl_built]: the job's minimum of each.
  int agreed[3] = {facts.libtorch_cuda ? 1 : 0, facts.cuda_devices, facts.nccl_built ? 1 : 0};
  MPI_Allreduce(MPI_IN_PLACE, agreed, 3, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (run.device != "cuda") {  // "cuda" is checked per rank: the lacking rank names itself
    facts.libtorch_cuda = agreed[0] == 1;
    facts.cuda_devices = agreed[1];
  }
  facts.nccl_built = agreed[2] == 1;
  // Where each rank's GPU is (host, PCI bus id of device local_rank % devices, the rule
  // resolve_run_settings applies): NCCL pays only when a group's ranks sit on distinct GPUs.
  constexpr int kPlace = 160;
  std::array<char, kPlace> mine{};
  const int local_devices = facts.libtorch_cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
  const std::string bus = local_devices > 0 ? comm::cuda_pci_bus_id(process.local_rank % local_devices) : "";
  if (!bus.empty()) std::snprintf(mine.data(), kPlace, "%.120s/%s", dne::host_name().c_str(), bus.c_str());
  std::vector<char> all(static_cast<std::size_t>(process.world_size) * kPlace);
  MPI_Allgather(mine.data(), kPlace, MPI_CHAR, all.data(), kPlace, MPI_CHAR, MPI_COMM_WORLD);
  std::vector<std::string> placement;
  for (int r = 0; r < process.world_size; ++r) placement.emplace_back(all.data() + static_cast<std::size_t>(r) * kPlace);
  facts.group_gpus_distinct = config::gpus_distinct_within_groups(placement, static_cast<int>(run.ranks_per_experiment));
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
    return comm::DeviceChoice(settings);
  }
  if (process.world_size > 1) sweep::broadcast_politely(MPI_COMM_WORLD, error, failing);
  throw PreflightError(error + (process.world_size > 1 ? " (on rank " + std::to_string(failing) + ")" : ""), "config error", 2);
}

}  // namespace dne::run
