// comm::allreduce_sum on tensors: which communicator call a tensor reaches, by where it lives.
// A test double stands in for a group of two ranks that hold the same values (a sum doubles
// them); one variant takes host buffers only (MPI's case), the other device buffers too (NCCL's).
// The CUDA cases run where LibTorch sees a GPU and skip with the reason elsewhere.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dne/comm/tensor_sum.hpp"
#include "dne/core/errors.hpp"

namespace {

using namespace dne;

/// Two ranks with equal values: every sum doubles; counts which entry point each sum used.
class TwinRanks final : public comm::Communicator {
 public:
  explicit TwinRanks(bool device_sums) : device_sums_(device_sums) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string name() const override { return "twin"; }
  void allreduce_sum(float* data, std::size_t n) override { twice(data, n, host_calls); }
  void allreduce_sum(double* data, std::size_t n) override { twice(data, n, host_calls); }
  bool sums_device_memory() const override { return device_sums_; }
  void allreduce_sum_device(float* data, std::size_t n) override { device(data, n); }
  void allreduce_sum_device(double* data, std::size_t n) override { device(data, n); }
  MinLoc allreduce_minloc(double value, long long location) override { return {value, location}; }
  void broadcast(void*, std::size_t, int) override {}
  std::vector<double> allgather(const double* data, std::size_t count) override { return {data, data + count}; }
  void barrier() override {}

  int host_calls = 0, device_calls = 0;

 private:
  template <class T>
  static void twice(T* data, std::size_t n, int& calls) {
    for (std::size_t i = 0; i < n; ++i) data[i] *= 2;
    ++calls;
  }
  template <class T>
  void device(T* data, std::size_t n) {  // device memory: doubled with a tensor op on it
    const auto dtype = std::is_same_v<T, float> ? torch::kFloat32 : torch::kFloat64;
    torch::from_blob(data, {static_cast<std::int64_t>(n)}, torch::TensorOptions().dtype(dtype).device(torch::kCUDA)).mul_(2);
    ++device_calls;
  }
  bool device_sums_;
};

TEST(TensorSum, HostTensorsGoToTheHostSum) {
  TwinRanks group(true);
  auto f = torch::tensor({1.0f, -2.5f});
  auto d = torch::tensor({3.0, 0.25}, torch::kFloat64);
  comm::allreduce_sum(group, f);
  comm::allreduce_sum(group, d);
  EXPECT_TRUE(torch::equal(f, torch::tensor({2.0f, -5.0f})));
  EXPECT_TRUE(torch::equal(d, torch::tensor({6.0, 0.5}, torch::kFloat64)));
  EXPECT_EQ(group.host_calls, 2);
  EXPECT_EQ(group.device_calls, 0);
}

TEST(TensorSum, RefusesOtherDtypesAndNonContiguousTensors) {
  TwinRanks group(false);
  auto ints = torch::tensor({1, 2});
  EXPECT_THROW(comm::allreduce_sum(group, ints), CommError);
  auto strided = torch::zeros({4, 4}).t();
  EXPECT_THROW(comm::allreduce_sum(group, strided), CommError);
  EXPECT_EQ(group.host_calls, 0);
}

TEST(TensorSum, OneRankAloneTakesDeviceBuffersWithoutCopies) {
  auto self = comm::make_self_communicator();
  EXPECT_TRUE(self->sums_device_memory());
  auto t = torch::tensor({1.0f, 2.0f});
  comm::allreduce_sum(*self, t);
  EXPECT_TRUE(torch::equal(t, torch::tensor({1.0f, 2.0f})));
  EXPECT_EQ(self->bytes_communicated(), 8u);
}

TEST(TensorSum, CudaTensorsUseTheDeviceSumOrAreStagedThroughTheHost) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "LibTorch sees no CUDA device (CPU build or no GPU)";
  const auto on = torch::TensorOptions().device(torch::kCUDA);
  TwinRanks nccl_like(true), mpi_like(false);
  auto a = torch::tensor({1.5f, 4.0f}, on), b = torch::tensor({1.5, 4.0}, on.dtype(torch::kFloat64));
  comm::allreduce_sum(nccl_like, a);
  comm::allreduce_sum(mpi_like, b);
  EXPECT_TRUE(a.is_cuda());
  EXPECT_TRUE(b.is_cuda());
  EXPECT_TRUE(torch::equal(a.cpu(), torch::tensor({3.0f, 8.0f})));
  EXPECT_TRUE(torch::equal(b.cpu(), torch::tensor({3.0, 8.0}, torch::kFloat64)));
  EXPECT_EQ(nccl_like.device_calls, 1);
  EXPECT_EQ(nccl_like.host_calls, 0);
  EXPECT_EQ(mpi_like.host_calls, 1);  // staged: device -> host -> sum -> device
  EXPECT_EQ(mpi_like.device_calls, 0);
}

}  // namespace
