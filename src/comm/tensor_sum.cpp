// Group sums of tensors on the host or on the device (see tensor_sum.hpp).
#include "dne/comm/tensor_sum.hpp"

#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "dne/core/errors.hpp"

namespace dne::comm {
namespace {

/// The communicator's sum of `n` values at `data` (host or device memory).
template <class T>
void sum_values(Communicator& group, T* data, std::size_t n, bool device) {
  if (device)
    group.allreduce_sum_device(data, n);
  else
    group.allreduce_sum(data, n);
}

template <class T>
void sum_tensor(Communicator& group, torch::Tensor& t) {
  const auto n = static_cast<std::size_t>(t.numel());
  if (t.is_cpu()) return sum_values(group, t.data_ptr<T>(), n, false);
  // The device sum orders itself after the default stream: work queued on another would be
  // read before it is done.
  if (c10::impl::getDeviceGuardImpl(c10::kCUDA)->getStream(t.device()).id() != 0)
    throw CommError("group sum: the tensor's work is queued on a non-default CUDA stream");
  if (group.sums_device_memory()) return sum_values(group, t.data_ptr<T>(), n, true);
  if (group.size() == 1) return;  // the sum over one rank is the tensor: no round trip through the host
  auto host = t.to(torch::kCPU);  // staged: MPI takes host buffers
  sum_values(group, host.data_ptr<T>(), n, false);
  t.copy_(host);
}

}  // namespace

void allreduce_sum(Communicator& group, torch::Tensor& t) {
  if (!t.is_contiguous()) throw CommError("group sum: the tensor is not contiguous");
  if (!t.is_cpu() && !t.is_cuda()) throw CommError("group sum: tensors on " + t.device().str() + " are not supported");
  if (t.scalar_type() == torch::kFloat32) return sum_tensor<float>(group, t);
  if (t.scalar_type() == torch::kFloat64) return sum_tensor<double>(group, t);
  throw CommError(std::string("group sum: dtype ") + c10::toString(t.scalar_type()) + " (float32 or float64 only)");
}

}  // namespace dne::comm
