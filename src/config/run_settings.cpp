// Run-wide settings and the device / precision / backend rule (see run_settings.hpp).
#include "dne/config/run_settings.hpp"

#include <set>

#include "dne/core/errors.hpp"

namespace dne::config {

bool gpus_distinct_within_groups(const std::vector<std::string>& placement, int ranks_per_group) {
  if (ranks_per_group < 1) return false;
  const std::size_t k = static_cast<std::size_t>(ranks_per_group);
  for (std::size_t first = 0; first + k <= placement.size(); first += k) {
    std::set<std::string> seen;
    for (std::size_t r = first; r < first + k; ++r)
      if (placement[r].empty() || !seen.insert(placement[r]).second) return false;
  }
  return true;
}

RunSettings resolve_run_settings(const RunConfig& run, const std::vector<ExperimentConfig>& experiments, int local_rank,
                                 const DeviceFacts& facts) {
  RunSettings s;
  const bool gpu_here = facts.libtorch_cuda && facts.cuda_devices > 0;
  const std::string why_not = !facts.libtorch_cuda ? "this LibTorch has no CUDA (build against a CUDA LibTorch: README)"
                                                   : "no CUDA device is visible (CUDA_VISIBLE_DEVICES, driver)";
  if (run.device == "cuda" && !gpu_here) throw ConfigError("run.device = \"cuda\": " + why_not);
  if (run.device == "cuda" || (run.device == "auto" && gpu_here)) {
    s.device = "cuda";
    s.cuda_index = local_rank % facts.cuda_devices;
    s.reason = "cuda:" + std::to_string(s.cuda_index) + " (" + run.device + ": node-local rank " +
               std::to_string(local_rank) + " of " + std::to_string(facts.cuda_devices) + " visible device(s))";
  } else {
    s.device = "cpu";
    s.reason = run.device == "cpu" ? "cpu (run.device = \"cpu\")" : "cpu (auto: " + why_not + ")";
  }
  for (const auto& c : experiments)
    if (s.device == "cpu" && c.run.precision != "fp32")
      throw ConfigError("run.precision = \"" + c.run.precision + "\" is for FM forwards on a GPU, and this run is on the cpu (" +
                        s.reason + "): use \"fp32\"");
  const std::string& backend = run.backend;
  if (backend == "nccl" && s.device != "cuda")
    throw ConfigError("comm.backend = \"nccl\" needs GPUs, and this run is on the cpu (" + s.reason + ")");
  if (backend == "nccl" && !facts.nccl_built)
    throw ConfigError("comm.backend = \"nccl\": this build has no NCCL communicator (configure with CUDA and NCCL, "
                      "DNE_WITH_NCCL)");
  const bool nccl_gains = s.device == "cuda" && facts.nccl_built && run.ranks_per_experiment > 1 &&
                          facts.group_gpus_distinct;
  s.backend = backend == "nccl" || (backend == "auto" && nccl_gains) ? "nccl" : "mpi";
  return s;
}

}  // namespace dne::config
