// Single-rank communicator, the block split that shards work over a group, and the base class's
// host-only default for device sums.
//
// SelfCommunicator is what an experiment uses when it runs on one rank without MPI: every
// collective returns its input unchanged (min-loc only maps NaN to +infinity, as every
// implementation does), but the payload bytes are counted exactly as the MPI communicator counts
// them, so traces agree between one-rank runs with and without MPI. shard_range is the one place
// that decides which rank evaluates which items (see communicator.hpp).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "dne/comm/communicator.hpp"
#include "dne/core/errors.hpp"

namespace dne::comm {
namespace {

class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "self"; }

  void allreduce_sum(float*, std::size_t n) override { bytes_ += n * sizeof(float); }
  void allreduce_sum(double*, std::size_t n) override { bytes_ += n * sizeof(double); }
  bool sums_device_memory() const override { return true; }  // nothing to add: the data is never touched
  void allreduce_sum_device(float*, std::size_t n) override { bytes_ += n * sizeof(float); }
  void allreduce_sum_device(double*, std::size_t n) override { bytes_ += n * sizeof(double); }

  MinLoc allreduce_minloc(double value, long long location) override {
    bytes_ += sizeof(double) + sizeof(long long);
    return {std::isnan(value) ? std::numeric_limits<double>::infinity() : value, location};
  }

  void broadcast(void*, std::size_t bytes, int root) override {
    if (root != 0)
      throw CommError("self communicator: broadcast root " + std::to_string(root) + " outside [0, 1)");
    bytes_ += bytes;
  }

  std::vector<double> allgather(const double* data, std::size_t count) override {
    bytes_ += count * sizeof(double);
    return count == 0 ? std::vector<double>{} : std::vector<double>(data, data + count);
  }

  void barrier() override {}
};

}  // namespace

void Communicator::allreduce_sum_device(float*, std::size_t) {
  throw CommError("the " + name() + " communicator sums host buffers only (stage device data through the host)");
}
void Communicator::allreduce_sum_device(double*, std::size_t) {
  throw CommError("the " + name() + " communicator sums host buffers only (stage device data through the host)");
}

std::unique_ptr<Communicator> make_self_communicator() { return std::make_unique<SelfCommunicator>(); }

std::pair<std::size_t, std::size_t> shard_range(std::size_t total, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size)
    throw CommError("shard_range: rank " + std::to_string(rank) + " outside [0, " + std::to_string(size) + ")");
  const auto r = static_cast<std::size_t>(rank), s = static_cast<std::size_t>(size);
  const std::size_t base = total / s, extra = total % s;
  // Ranks before `extra` hold base + 1 items, the rest base; r * base + min(r, extra) <= total.
  const std::size_t begin = r * base + std::min(r, extra);
  return {begin, begin + base + (r < extra ? 1 : 0)};
}

}  // namespace dne::comm
