// NCCL communicator: group sums on the GPU, control collectives over MPI (see
// nccl_communicator.hpp), and the checked-call macros for the CUDA runtime and NCCL.
//
// Set-up is collective over the caller's MPI communicator and fails together: each rank uses the
// CUDA device its caller gives it (comm::DeviceChoice), the ranks of the group that share a node check
// that no two of them use the same device (NCCL refuses duplicate devices in a communicator),
// and an all-reduce of "ok" flags makes every rank throw CommError when any rank cannot go on,
// so no rank is left waiting inside ncclCommInitRank. Sums of device buffers (the editors' loss
// slots and gradient estimates, comm::allreduce_sum on a CUDA tensor) run in place: the
// communicator's stream waits for an event recorded on the default stream (where LibTorch queued
// the work that wrote the buffer), then ncclAllReduce. Sums of host buffers go through a
// page-locked bounce buffer and one device buffer (both grown on demand): host -> pinned -> device,
// ncclAllReduce in place, device -> pinned -> host (copies from pageable memory are 5-8x slower
// from 1 MiB on, docs/gpu.md). Either way the rank waits for the sum with the timeout
// (wait_or_abort) before returning. Compiled only with DNE_WITH_NCCL.
#include "dne/comm/nccl_communicator.hpp"

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "dne/comm/mpi_communicator.hpp"

namespace dne::comm {
namespace {

[[noreturn]] void library_fail(const char* library, const char* call, const char* file, int line,
                               const char* message) {
  throw CommError(std::string(library) + " call " + call + " failed at " + file + ":" + std::to_string(line) +
                  ": " + message);
}

}  // namespace

/// Evaluates a CUDA runtime call once; throws CommError with file:line and cudaGetErrorString.
#define DNE_CUDA_CHECK(call)                                                            \
  do {                                                                                  \
    const cudaError_t dne_cuda_code_ = (call);                                          \
    if (dne_cuda_code_ != cudaSuccess)                                                  \
      library_fail("CUDA", #call, __FILE__, __LINE__, cudaGetErrorString(dne_cuda_code_)); \
  } while (0)

/// Evaluates an NCCL call once; throws CommError with file:line and ncclGetErrorString.
#define DNE_NCCL_CHECK(call)                                                            \
  do {                                                                                  \
    const ncclResult_t dne_nccl_code_ = (call);                                         \
    if (dne_nccl_code_ != ncclSuccess)                                                  \
      library_fail("NCCL", #call, __FILE__, __LINE__, ncclGetErrorString(dne_nccl_code_)); \
  } while (0)

namespace {

/// CUDA/NCCL objects of one communicator, released in reverse order (never throws).
struct NcclHandles {
  int device = -1;
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t reduced = nullptr;  // recorded after each all-reduce, polled with the timeout
  cudaEvent_t written = nullptr;  // recorded on the default stream before a device-buffer sum
  void* buffer = nullptr;     // device staging buffer for host sums
  std::size_t capacity = 0;   // its size in bytes
  void* pinned = nullptr;     // page-locked bounce buffer for host sums
  std::size_t pinned_capacity = 0;

  NcclHandles() = default;
  NcclHandles(const NcclHandles&) = delete;
  NcclHandles& operator=(const NcclHandles&) = delete;
  ~NcclHandles() {
    if (device < 0) return;
    cudaSetDevice(device);
    // On an error path the peers may never reach ncclCommDestroy (a collective within a node):
    // abort locally, without waiting for the stream, so that no rank waits comm.timeout_s.
    if (nccl_teardown(std::uncaught_exceptions()) == NcclTeardown::kAbort) {
      if (comm != nullptr) ncclCommAbort(comm);
      comm = nullptr;
    }
    if (stream != nullptr && comm != nullptr) cudaStreamSynchronize(stream);
    if (comm != nullptr) ncclCommDestroy(comm);
    if (buffer != nullptr) cudaFree(buffer);
    if (pinned != nullptr) cudaFreeHost(pinned);
    if (reduced != nullptr) cudaEventDestroy(reduced);
    if (written != nullptr) cudaEventDestroy(written);
    if (stream != nullptr) cudaStreamDestroy(stream);
  }
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(MPI_Comm comm, double timeout_s, int chosen_device)
      : control_(make_mpi_communicator(comm)), timeout_s_(timeout_s) {
    // 1. Local choices, recorded rather than thrown so that every rank reaches the agreement.
    std::string problem;
    int devices = 0;
    const cudaError_t counted = cudaGetDeviceCount(&devices);
    if (counted != cudaSuccess) {
      problem = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(counted);
      devices = 0;
      cudaGetLastError();  // clear the recorded error
    } else if (devices == 0) {
      problem = "no CUDA device is visible";
    }

    MPI_Comm node = MPI_COMM_NULL;  // the ranks of this group that share this node
    DNE_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, control_->rank(), MPI_INFO_NULL, &node));
    int node_rank = 0, node_size = 1;
    MPI_Comm_rank(node, &node_rank);
    MPI_Comm_size(node, &node_size);
    // The device is the caller's choice (comm::DeviceChoice: the rank's FM works there too).
    if (problem.empty() && chosen_device < 0) problem = "no CUDA device was given for this rank";
    const int device = devices > 0 && chosen_device >= 0 ? chosen_device % devices : -1;
    // Compare physical GPUs (PCI bus ids), not ordinals: with CUDA_VISIBLE_DEVICES set per rank
    // (launch/rank-env.sh) every rank sees its own GPU as device 0.
    constexpr int kIdLength = 32;
    std::array<char, kIdLength> bus_id{};
    if (device < 0 || cudaDeviceGetPCIBusId(bus_id.data(), kIdLength, device) != cudaSuccess) {
      cudaGetLastError();
      std::snprintf(bus_id.data(), kIdLength, "no-device-rank-%d", node_rank);  // unique: never a clash
    }
    std::vector<char> node_ids(static_cast<std::size_t>(node_size) * kIdLength);
    const int gathered = MPI_Allgather(bus_id.data(), kIdLength, MPI_CHAR, node_ids.data(), kIdLength, MPI_CHAR, node);
    MPI_Comm_free(&node);
    DNE_MPI_CHECK(gathered);
    if (problem.empty()) {
      std::vector<std::string> ids;
      for (int r = 0; r < node_size; ++r)
        ids.emplace_back(node_ids.data() + static_cast<std::size_t>(r) * kIdLength);
      std::sort(ids.begin(), ids.end());
      const auto twice = std::adjacent_find(ids.begin(), ids.end());
      if (twice != ids.end())
        problem = std::to_string(node_size) + " ranks of the group share a node with " + std::to_string(devices) +
                  " visible CUDA device(s) and two would use the same GPU (" + *twice +
                  "); NCCL needs a distinct device per rank";
    }
    if (problem.empty()) {
      const cudaError_t set = cudaSetDevice(device);
      if (set != cudaSuccess) problem = "cudaSetDevice(" + std::to_string(device) + "): " + cudaGetErrorString(set);
    }

    // 2. Agreement: every rank learns how many ranks failed, and all throw together.
    double failures = problem.empty() ? 0.0 : 1.0;
    control_->allreduce_sum(&failures, 1);
    if (failures > 0)
      throw CommError("NCCL communicator: " +
                      (problem.empty() ? std::to_string(static_cast<int>(failures)) + " other rank(s) failed to set up CUDA"
                                       : problem));
    h_.device = device;

    // 3. NCCL: rank 0 creates the id (and its result code travels with it), all ranks join.
    struct {
      ncclUniqueId id;
      int code;
    } shared{};
    shared.code = ncclSuccess;
    if (control_->rank() == 0) shared.code = ncclGetUniqueId(&shared.id);
    control_->broadcast(&shared, sizeof shared, 0);
    if (shared.code != ncclSuccess)
      throw CommError(std::string("NCCL call ncclGetUniqueId failed on group rank 0: ") +
                      ncclGetErrorString(static_cast<ncclResult_t>(shared.code)));
    DNE_NCCL_CHECK(ncclCommInitRank(&h_.comm, control_->size(), shared.id, control_->rank()));
    DNE_CUDA_CHECK(cudaStreamCreateWithFlags(&h_.stream, cudaStreamNonBlocking));
    DNE_CUDA_CHECK(cudaEventCreateWithFlags(&h_.reduced, cudaEventDisableTiming));
    DNE_CUDA_CHECK(cudaEventCreateWithFlags(&h_.written, cudaEventDisableTiming));
    // 4. One warm-up sum while every rank is known to be here: NCCL may connect the ranks lazily
    // at the first collective (NCCL_RUNTIME_CONNECT, 2.22+), blocking inside ncclAllReduce where
    // the timeout cannot see it. After this, a later sum waits only in wait_or_abort.
    float one = 1.0f;
    reduce(&one, 1, ncclFloat32);
    bytes_ = 0;
    if (one != static_cast<float>(control_->size()))
      throw CommError("NCCL communicator: the warm-up sum gave " + std::to_string(one) + " on " +
                      std::to_string(control_->size()) + " rank(s)");
  }

  int rank() const override { return control_->rank(); }
  int size() const override { return control_->size(); }
  std::string name() const override { return "nccl"; }

  void allreduce_sum(float* data, std::size_t n) override { reduce(data, n, ncclFloat32); }
  void allreduce_sum(double* data, std::size_t n) override { reduce(data, n, ncclFloat64); }
  bool sums_device_memory() const override { return true; }
  void allreduce_sum_device(float* data, std::size_t n) override { reduce_device(data, n, ncclFloat32); }
  void allreduce_sum_device(double* data, std::size_t n) override { reduce_device(data, n, ncclFloat64); }

  MinLoc allreduce_minloc(double value, long long location) override {
    bytes_ += sizeof(double) + sizeof(long long);
    return control_->allreduce_minloc(value, location);
  }
  void broadcast(void* data, std::size_t bytes, int root) override {
    bytes_ += bytes;
    control_->broadcast(data, bytes, root);
  }
  std::vector<double> allgather(const double* data, std::size_t count) override {
    bytes_ += count * sizeof(double);
    return control_->allgather(data, count);
  }
  void barrier() override { control_->barrier(); }

 private:
  /// Throws when the communicator was aborted; makes the rank's device current.
  void usable() {
    if (h_.comm == nullptr) throw CommError("NCCL communicator: used after it was aborted (a peer died or hung)");
    DNE_CUDA_CHECK(cudaSetDevice(h_.device));
  }

  /// Grows `*buffer` (device memory, or page-locked host memory when `host`) to `bytes`.
  void reserve(void** buffer, std::size_t& capacity, std::size_t bytes, bool host) {
    if (bytes <= capacity) return;
    if (*buffer != nullptr) {
      DNE_CUDA_CHECK(cudaStreamSynchronize(h_.stream));
      void* old = *buffer;
      *buffer = nullptr;
      capacity = 0;
      DNE_CUDA_CHECK(host ? cudaFreeHost(old) : cudaFree(old));
    }
    DNE_CUDA_CHECK(host ? cudaHostAlloc(buffer, bytes, cudaHostAllocDefault) : cudaMalloc(buffer, bytes));
    capacity = bytes;
  }

  /// Host buffer: host -> pinned -> device, sum, device -> pinned -> host.
  template <class T>
  void reduce(T* data, std::size_t n, ncclDataType_t type) {
    const std::size_t bytes = n * sizeof(T);
    bytes_ += bytes;
    if (n == 0) return;  // n is the same on every rank: all skip
    usable();
    reserve(&h_.buffer, h_.capacity, bytes, false);
    reserve(&h_.pinned, h_.pinned_capacity, bytes, true);
    std::memcpy(h_.pinned, data, bytes);
    DNE_CUDA_CHECK(cudaMemcpyAsync(h_.buffer, h_.pinned, bytes, cudaMemcpyHostToDevice, h_.stream));
    DNE_NCCL_CHECK(ncclAllReduce(h_.buffer, h_.buffer, n, type, ncclSum, h_.comm, h_.stream));
    // Wait for the sum itself (with the timeout) before the copy back.
    DNE_CUDA_CHECK(cudaEventRecord(h_.reduced, h_.stream));
    wait_or_abort();
    DNE_CUDA_CHECK(cudaMemcpyAsync(h_.pinned, h_.buffer, bytes, cudaMemcpyDeviceToHost, h_.stream));
    DNE_CUDA_CHECK(cudaStreamSynchronize(h_.stream));
    std::memcpy(data, h_.pinned, bytes);
  }

  /// Device buffer, in place: after the default stream's work that wrote it, no host staging.
  template <class T>
  void reduce_device(T* data, std::size_t n, ncclDataType_t type) {
    bytes_ += n * sizeof(T);
    if (n == 0) return;
    usable();
    DNE_CUDA_CHECK(cudaEventRecord(h_.written, cudaStreamLegacy));
    DNE_CUDA_CHECK(cudaStreamWaitEvent(h_.stream, h_.written, 0));
    DNE_NCCL_CHECK(ncclAllReduce(data, data, n, type, ncclSum, h_.comm, h_.stream));
    DNE_CUDA_CHECK(cudaEventRecord(h_.reduced, h_.stream));
    wait_or_abort();  // complete: later work on any stream sees the sum
  }

  /// Waits for the all-reduce (its event), polling NCCL's asynchronous error. The event follows
  /// this rank's earlier work on the default stream too (a device sum waits for it), so the
  /// timeout also covers the rank's own queued kernels: keep comm.timeout_s well above a step. A peer that died or
  /// hangs leaves the all-reduce unfinished for ever (cudaStreamSynchronize would never return):
  /// on an NCCL error, or after comm.timeout_s, the communicator is aborted (ncclCommAbort) and
  /// CommError is thrown, so the rank ends with a clear line instead of hanging the job.
  void wait_or_abort() {
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      const cudaError_t state = cudaEventQuery(h_.reduced);
      if (state == cudaSuccess) return;
      if (state != cudaErrorNotReady) library_fail("CUDA", "cudaEventQuery", __FILE__, __LINE__, cudaGetErrorString(state));
      ncclResult_t async = ncclSuccess;
      DNE_NCCL_CHECK(ncclCommGetAsyncError(h_.comm, &async));
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (async != ncclSuccess || waited > timeout_s_) {
        ncclCommAbort(h_.comm);
        h_.comm = nullptr;
        throw CommError(async != ncclSuccess
                            ? std::string("NCCL all-reduce failed: ") + ncclGetErrorString(async) +
                                  "; the communicator was aborted"
                            : "NCCL all-reduce unfinished after comm.timeout_s = " + std::to_string(timeout_s_) +
                                  " s: a peer of the group died or hangs; the communicator was aborted");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  std::unique_ptr<Communicator> control_;  // MPI over a duplicate of the group's communicator
  double timeout_s_;                       // comm.timeout_s
  NcclHandles h_;
};

}  // namespace

int cuda_device_count() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) {
    cudaGetLastError();  // clear the recorded error
    return 0;
  }
  return devices;
}

bool nccl_available() { return cuda_device_count() > 0; }

std::string cuda_device_name(int index) {
  cudaDeviceProp properties{};
  if (index < 0 || cudaGetDeviceProperties(&properties, index) != cudaSuccess) return "";
  return properties.name;
}

std::string cuda_pci_bus_id(int index) {
  std::array<char, 32> id{};
  if (index < 0 || cudaDeviceGetPCIBusId(id.data(), static_cast<int>(id.size()), index) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return id.data();
}

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, int device, double timeout_s) {
  return std::make_unique<NcclCommunicator>(comm, timeout_s, device);
}

}  // namespace dne::comm
