// The run's device and communicator choice on one rank (see device_choice.hpp).
#include "dne/comm/device_choice.hpp"

#include <ATen/detail/CUDAHooksInterface.h>

#include "dne/comm/mpi_communicator.hpp"
#include "dne/comm/nccl_communicator.hpp"

namespace dne::comm {

torch::Device DeviceChoice::torch_device() const {
  return cuda() ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(settings_.cuda_index)) : torch::Device(torch::kCPU);
}

std::unique_ptr<Communicator> DeviceChoice::communicator(MPI_Comm comm, double timeout_s) const {
  if (settings_.backend == "nccl") return make_nccl_communicator(comm, cuda_index(), timeout_s);
  return make_mpi_communicator(comm);
}

void DeviceChoice::synchronize() const {
  if (cuda()) torch::cuda::synchronize(settings_.cuda_index);
}

std::string DeviceChoice::description() const {
  if (!cuda()) return "cpu";
  const std::string name = cuda_device_name(settings_.cuda_index);
  return "cuda:" + std::to_string(settings_.cuda_index) + (name.empty() ? "" : " (" + name + ")");
}

std::string libtorch_cuda_version() {
  try {
    const long v = at::detail::getCUDAHooks().versionCUDART();
    return v > 0 ? std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10) : "none";
  } catch (const std::exception&) {  // a CPU LibTorch cannot answer
    return "none";
  }
}

}  // namespace dne::comm
