// The collectives a rank group uses inside one experiment.
//
// Zeroth-order editors (GeZO, RGE, SPSA) shard an iteration's loss evaluations over the ranks of
// a group and combine them with these collectives. The interface is Torch- and MPI-free (raw host
// buffers), with three implementations: SelfCommunicator (one rank, every collective is the
// identity; here), MpiCommunicator (mpi_communicator.hpp) and NcclCommunicator
// (nccl_communicator.hpp, built when CMake finds CUDA and NCCL). Every implementation counts the
// payload bytes this rank passes to collectives, which the benchmark and the traces report.
// Semantics, determinism and byte accounting: docs/comm.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dne::comm {

/// A group of ranks and its collectives. Every collective must be called by every rank of the
/// group, in the same order, with matching arguments (same `n` for sums, same `bytes` and `root`
/// for broadcasts); failures throw dne::CommError.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// "self", "mpi" or "nccl".
  virtual std::string name() const = 0;

  /// In-place element-wise sum over ranks of `n` values. The order in which the ranks' values are
  /// added is the library's and depends on the rank count: bitwise results across rank counts
  /// need slots with exactly one non-zero contributor (docs/comm.md).
  virtual void allreduce_sum(float* data, std::size_t n) = 0;
  virtual void allreduce_sum(double* data, std::size_t n) = 0;

  /// True when this communicator sums buffers in the rank's CUDA device memory in place
  /// (allreduce_sum_device): NCCL, and one rank alone. Others take host buffers only; Torch code
  /// goes through comm::allreduce_sum(Communicator&, torch::Tensor&) (tensor_sum.hpp), which
  /// stages a device tensor through the host for them.
  virtual bool sums_device_memory() const { return false; }
  /// As allreduce_sum, but `data` is CUDA device memory on the rank's device, written by work
  /// queued on the default stream (LibTorch's, as dne uses it); the sum is complete on return.
  /// The default throws CommError (host-only communicators).
  virtual void allreduce_sum_device(float* data, std::size_t n);
  virtual void allreduce_sum_device(double* data, std::size_t n);

  /// Global minimum of `value` with the location the caller supplies (e.g. a candidate index).
  /// Ties go to the smallest location (deterministic); NaN counts as +infinity, so the result
  /// value is never NaN. Equal values at equal locations: -0.0 beats +0.0.
  struct MinLoc {
    double value;
    long long location;
  };
  virtual MinLoc allreduce_minloc(double value, long long location) = 0;

  /// Copies `bytes` bytes at `data` on rank `root` to `data` on every rank (in place).
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;
  /// Concatenation in rank order of each rank's `count` doubles; counts may differ per rank
  /// (all-gather-v) and may be zero.
  virtual std::vector<double> allgather(const double* data, std::size_t count) = 0;
  virtual void barrier() = 0;

  /// Payload bytes this rank has passed to collectives so far (sums: n * sizeof(T); min-loc: 16;
  /// broadcast: `bytes`, root included; all-gather: this rank's count * 8; barrier: 0).
  std::uint64_t bytes_communicated() const { return bytes_; }

 protected:
  std::uint64_t bytes_ = 0;
};

/// One rank: every collective returns its input (NaN -> +inf in min-loc; broadcast root must be 0).
std::unique_ptr<Communicator> make_self_communicator();

/// Contiguous block split of `total` items over `size` ranks: the half-open range [begin, end) of
/// `rank`. The first `total % size` ranks get one item more than the others; when total < size
/// the ranks from `total` on get an empty range (begin == end == total). Requires size >= 1 and
/// 0 <= rank < size (else CommError).
/// Example: 10 items over 3 ranks -> [0,4) [4,7) [7,10); 2 items over 3 ranks -> [0,1) [1,2) [2,2).
std::pair<std::size_t, std::size_t> shard_range(std::size_t total, int rank, int size);

}  // namespace dne::comm
