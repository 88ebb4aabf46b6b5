// The MPI (and, with a GPU, NCCL) communicators under a real `mpiexec -n N`: every collective is
// checked against values computed by formula from the rank numbers, for any N.
//
// Every rank runs every test. Rank 0 prints GoogleTest's usual output; the other ranks print only
// their failures (prefixed with the rank). The process exits non-zero on every rank if any rank
// failed. Tests never ASSERT between collectives: an early return on one rank would leave the
// others waiting. NcclCommunicator.* skip (on all ranks together) unless every rank has its own
// CUDA device; ctest runs them as the gpu-labelled comm_nccl_N entries.
#include <gtest/gtest.h>

#include <exception>
#include <stdexcept>
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "dne/comm/mpi_communicator.hpp"
#include "dne/comm/nccl_communicator.hpp"
#include "dne/core/errors.hpp"
#include "mpi_test_main.hpp"

#if defined(DNE_WITH_NCCL) && DNE_WITH_NCCL
#include <cuda_runtime.h>
#endif

namespace {

using dne_test::world_rank;
using dne_test::world_size;

using dne::comm::Communicator;

const double kInf = std::numeric_limits<double>::infinity();

std::unique_ptr<Communicator> world() { return dne::comm::make_mpi_communicator(MPI_COMM_WORLD); }

/// This rank's place among the world's ranks on its node: the device the tests give NCCL (the
/// rule run.device applies: node-local rank % devices, comm::DeviceChoice).
int node_local_rank() {
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int rank = 0;
  MPI_Comm_rank(node, &rank);
  MPI_Comm_free(&node);
  return rank;
}

// Rank r contributes (r + 1) (i + 1/4) to slot i, so slot i sums to (i + 1/4) n (n + 1) / 2: every
// term and partial sum is exact in float and double (values < 2^20 with two fraction bits), so
// any summation order gives exactly this.
void check_sums(Communicator& c, std::size_t len) {
  const int n = c.size(), r = c.rank();
  std::vector<double> d(len);
  std::vector<float> f(len);
  for (std::size_t i = 0; i < len; ++i) {
    d[i] = (r + 1) * (static_cast<double>(i) + 0.25);
    f[i] = static_cast<float>(d[i]);
  }
  c.allreduce_sum(d.data(), d.size());
  c.allreduce_sum(f.data(), f.size());
  std::size_t wrong_d = 0, wrong_f = 0, first_d = len, first_f = len;
  for (std::size_t i = 0; i < len; ++i) {
    const double expected = (static_cast<double>(i) + 0.25) * n * (n + 1) / 2.0;
    if (d[i] != expected && wrong_d++ == 0) first_d = i;
    if (f[i] != static_cast<float>(expected) && wrong_f++ == 0) first_f = i;
  }
  EXPECT_EQ(wrong_d, 0u) << "double slots wrong, first " << first_d << " of " << len;
  EXPECT_EQ(wrong_f, 0u) << "float slots wrong, first " << first_f << " of " << len;
}

TEST(MpiCommunicator, RankSizeName) {
  auto c = world();
  EXPECT_EQ(c->name(), "mpi");
  EXPECT_EQ(c->rank(), world_rank());
  EXPECT_EQ(c->size(), world_size());
}

TEST(MpiCommunicator, AllreduceSumFloatAndDouble) {
  auto c = world();
  check_sums(*c, 1);
  check_sums(*c, 1000);
  c->allreduce_sum(static_cast<double*>(nullptr), 0);  // empty sums are no-ops on every rank
  c->allreduce_sum(static_cast<float*>(nullptr), 0);
  EXPECT_EQ(c->bytes_communicated(), (1 + 1000) * (8u + 4u));
}

TEST(MpiCommunicator, AllreduceSumAndBroadcastInChunks) {
  // Pieces of at most 7 elements (7 bytes for broadcasts): 50 = 7 * 7 + 1.
  auto c = dne::comm::make_mpi_communicator(MPI_COMM_WORLD, 7);
  check_sums(*c, 50);
  const int root = c->size() - 1;
  std::vector<unsigned char> bytes(50);
  for (std::size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<unsigned char>(c->rank() == root ? 3 * i + 1 : 0);
  c->broadcast(bytes.data(), bytes.size(), root);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) wrong += bytes[i] != static_cast<unsigned char>(3 * i + 1);
  EXPECT_EQ(wrong, 0u);
  EXPECT_THROW(dne::comm::make_mpi_communicator(MPI_COMM_WORLD, 0), dne::CommError);  // local check
}

TEST(MpiCommunicator, MinLocDistinctValues) {
  auto c = world();
  const int r = c->rank(), n = c->size();
  // Rank r offers 10 - r at 100 + r: the last rank holds the minimum.
  auto m = c->allreduce_minloc(10.0 - r, 100 + r);
  EXPECT_EQ(m.value, 10.0 - (n - 1));
  EXPECT_EQ(m.location, 100 + (n - 1));
  // Rank r offers |r - n/2| + 1/2 at 200 + r: the minimum sits at rank n/2 (a middle rank).
  m = c->allreduce_minloc(std::abs(r - n / 2) + 0.5, 200 + r);
  EXPECT_EQ(m.value, 0.5);
  EXPECT_EQ(m.location, 200 + n / 2);
}

TEST(MpiCommunicator, MinLocTiesGoToTheSmallestLocation) {
  auto c = world();
  const int r = c->rank(), n = c->size();
  // Equal values everywhere, locations 50 - r: the last rank's location is the smallest.
  auto m = c->allreduce_minloc(1.0, 50 - r);
  EXPECT_EQ(m.value, 1.0);
  EXPECT_EQ(m.location, 50 - (n - 1));
  // 64-bit and negative locations stay exact.
  const long long big = 1LL << 40;
  m = c->allreduce_minloc(-2.0, big + (n - 1 - r));
  EXPECT_EQ(m.value, -2.0);
  EXPECT_EQ(m.location, big);
  m = c->allreduce_minloc(0.0, -3LL * r);
  EXPECT_EQ(m.location, -3LL * (n - 1));
  // -0.0 == +0.0: the smallest location wins and brings its own zero; at one location -0.0 wins.
  m = c->allreduce_minloc(r % 2 == 1 ? -0.0 : 0.0, 20 - r);
  EXPECT_EQ(m.location, 20 - (n - 1));
  EXPECT_EQ(std::signbit(m.value), (n - 1) % 2 == 1);
  m = c->allreduce_minloc(r % 2 == 1 ? -0.0 : 0.0, 7);
  EXPECT_EQ(m.location, 7);
  EXPECT_EQ(std::signbit(m.value), n >= 2);
}

TEST(MpiCommunicator, MinLocNaNCountsAsInfinity) {
  auto c = world();
  const int r = c->rank(), n = c->size();
  // Even ranks offer NaN at r, odd ranks 3 + r at 10 + r: rank 1 wins when there is one.
  auto m = c->allreduce_minloc(r % 2 == 0 ? std::nan("") : 3.0 + r, r % 2 == 0 ? r : 10 + r);
  if (n == 1) {
    EXPECT_EQ(m.value, kInf);
    EXPECT_EQ(m.location, 0);
  } else {
    EXPECT_EQ(m.value, 4.0);
    EXPECT_EQ(m.location, 11);
  }
  // All NaN: +inf, and the tie goes to the smallest location (5).
  m = c->allreduce_minloc(std::nan(""), 5 + r);
  EXPECT_EQ(m.value, kInf);
  EXPECT_EQ(m.location, 5);
  // NaN (rank 0, location 9) ties with +inf (other ranks, location r): smallest location wins.
  m = c->allreduce_minloc(r == 0 ? std::nan("") : kInf, r == 0 ? 9 : r);
  EXPECT_EQ(m.value, kInf);
  EXPECT_EQ(m.location, n == 1 ? 9 : 1);
}

TEST(MpiCommunicator, BroadcastFromNonZeroRoot) {
  auto c = world();
  const int n = c->size();
  const int root = n - 1;  // a non-zero root whenever size > 1
  struct {
    long long id;
    double values[3];
  } payload{};
  if (c->rank() == root) payload = {4242, {0.5, -1.25, 1e300}};
  c->broadcast(&payload, sizeof payload, root);
  EXPECT_EQ(payload.id, 4242);
  EXPECT_EQ(payload.values[0], 0.5);
  EXPECT_EQ(payload.values[1], -1.25);
  EXPECT_EQ(payload.values[2], 1e300);
  // And from rank n / 2 (0 of 1, 1 of 2, 1 of 3).
  int value = c->rank() == n / 2 ? 99 : -1;
  c->broadcast(&value, sizeof value, n / 2);
  EXPECT_EQ(value, 99);
  c->broadcast(nullptr, 0, 0);  // empty broadcast is a no-op
}

TEST(MpiCommunicator, AllgatherUnevenCounts) {
  auto c = world();
  const int r = c->rank(), n = c->size();
  // Rank r sends r + 1 values 100 r + k: 0 | 100, 101 | 200, 201, 202 | ...
  std::vector<double> mine;
  for (int k = 0; k <= r; ++k) mine.push_back(100.0 * r + k);
  std::vector<double> expected;
  for (int q = 0; q < n; ++q)
    for (int k = 0; k <= q; ++k) expected.push_back(100.0 * q + k);
  EXPECT_EQ(c->allgather(mine.data(), mine.size()), expected);
  // Odd ranks send two values (-q, q), even ranks none.
  std::vector<double> odd;
  if (r % 2 == 1) odd = {-1.0 * r, 1.0 * r};
  expected.clear();
  for (int q = 1; q < n; q += 2) expected.insert(expected.end(), {-1.0 * q, 1.0 * q});
  EXPECT_EQ(c->allgather(odd.data(), odd.size()), expected);
  // Nobody sends anything.
  EXPECT_TRUE(c->allgather(nullptr, 0).empty());
}

TEST(MpiCommunicator, BarrierWaitsForTheSlowestRank) {
  auto c = world();
  c->barrier();
  // Rank 0 arrives 300 ms late; every other rank must wait for it (margin for oversubscription).
  const double start = MPI_Wtime();
  if (c->rank() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  c->barrier();
  const double waited = MPI_Wtime() - start;
  EXPECT_GE(waited, 0.15) << "rank " << c->rank() << " left the barrier before rank 0 arrived";
  EXPECT_EQ(c->bytes_communicated(), 0u);
}

TEST(MpiCommunicator, BytesCommunicatedCountsPayload) {
  auto c = world();
  const auto r = static_cast<std::uint64_t>(c->rank());
  std::uint64_t expected = 0;
  EXPECT_EQ(c->bytes_communicated(), expected);
  double d[5] = {};
  c->allreduce_sum(d, 5);
  EXPECT_EQ(c->bytes_communicated(), expected += 5 * 8);
  float f[3] = {};
  c->allreduce_sum(f, 3);
  EXPECT_EQ(c->bytes_communicated(), expected += 3 * 4);
  c->allreduce_minloc(1.0, 1);
  EXPECT_EQ(c->bytes_communicated(), expected += 16);
  char text[10] = "broadcast";
  c->broadcast(text, sizeof text, 0);  // counted on the root and on the receivers
  EXPECT_EQ(c->bytes_communicated(), expected += 10);
  std::vector<double> mine(r + 1, 1.0);
  c->allgather(mine.data(), mine.size());  // this rank's contribution only
  EXPECT_EQ(c->bytes_communicated(), expected += 8 * (r + 1));
  c->barrier();
  EXPECT_EQ(c->bytes_communicated(), expected);
}

TEST(MpiCommunicator, SubgroupsFromSplitLeaveTheCallersCommAlone) {
  // Groups of 2 consecutive ranks (the sweep's rank groups): sums stay inside a group.
  const int rank = world_rank(), n = world_size();
  MPI_Comm group = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, rank / 2, rank, &group);
  {
    auto c = dne::comm::make_mpi_communicator(group);
    double v = rank;
    c->allreduce_sum(&v, 1);
    const int first = (rank / 2) * 2;
    const int last = std::min(first + 1, n - 1);
    EXPECT_EQ(v, first + (last > first ? last : 0));
    EXPECT_EQ(c->size(), last - first + 1);
    EXPECT_EQ(c->rank(), rank - first);
  }
  // The communicator worked on a duplicate: `group` keeps its error handler and still works.
  MPI_Errhandler handler = MPI_ERRHANDLER_NULL;
  MPI_Comm_get_errhandler(group, &handler);
  EXPECT_TRUE(handler == MPI_ERRORS_ARE_FATAL);
  MPI_Errhandler_free(&handler);
  int one = 1, members = 0;
  EXPECT_EQ(MPI_Allreduce(&one, &members, 1, MPI_INT, MPI_SUM, group), MPI_SUCCESS);
  EXPECT_EQ(members, std::min(2, n - (rank / 2) * 2));
  MPI_Comm_free(&group);
}

TEST(MpiCommunicator, RejectsNullComm) {
  EXPECT_THROW(dne::comm::make_mpi_communicator(MPI_COMM_NULL), dne::CommError);
}

TEST(MpiCommunicator, FailedCallBecomesCommError) {
  // A root outside the group: MPI's argument check fails on every rank (no communication), and
  // the error comes back as CommError naming the call instead of aborting the job.
  auto c = world();
  int value = 0;
  try {
    c->broadcast(&value, sizeof value, c->size());
    ADD_FAILURE() << "broadcast from root " << c->size() << " did not throw";
  } catch (const dne::CommError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("MPI_Bcast"), std::string::npos) << what;
    EXPECT_NE(what.find("mpi_communicator.cpp:"), std::string::npos) << what;
  }
  c->barrier();  // the communicator is still usable
}

TEST(MpiCheck, ThrowsCommErrorWithLocationAndMpiMessage) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(MPI_ERR_COUNT, text, &length);
  const std::string mpi_message(text, static_cast<std::size_t>(length));
  try {
    DNE_MPI_CHECK(MPI_ERR_COUNT);
    ADD_FAILURE() << "DNE_MPI_CHECK did not throw";
  } catch (const dne::CommError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("MPI_ERR_COUNT failed at "), std::string::npos) << what;
    EXPECT_NE(what.find(std::string(__FILE__) + ":"), std::string::npos) << what;
    EXPECT_NE(what.find(mpi_message), std::string::npos) << what;
  }
  EXPECT_NO_THROW(DNE_MPI_CHECK(MPI_SUCCESS));
}

// The teardown rule (issue 26): while an exception unwinds, the NCCL handle is aborted (local),
// never destroyed (collective within a node: the peers would wait comm.timeout_s for it).
TEST(NcclTeardown, AbortWhileAnExceptionUnwindsDestroyOtherwise) {
  using dne::comm::NcclTeardown;
  EXPECT_EQ(dne::comm::nccl_teardown(0), NcclTeardown::kDestroy);
  EXPECT_EQ(dne::comm::nccl_teardown(1), NcclTeardown::kAbort);
  struct Probe {
    NcclTeardown* seen;
    ~Probe() { *seen = dne::comm::nccl_teardown(std::uncaught_exceptions()); }
  };
  NcclTeardown seen = NcclTeardown::kDestroy;
  try {
    Probe probe{&seen};
    throw std::runtime_error("a failing experiment");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(seen, NcclTeardown::kAbort);  // what ~NcclHandles sees on the error path
  { Probe probe{&seen}; }
  EXPECT_EQ(seen, NcclTeardown::kDestroy);
}

TEST(NcclSetup, FailsOnEveryRankWithoutDevice) {
  // Without a usable device (or without NCCL in the build) every rank throws CommError together:
  // none is left waiting in a collective. Skips where a device exists (see NcclCommunicator.*).
  int devices = dne::comm::cuda_device_count();
  MPI_Allreduce(MPI_IN_PLACE, &devices, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (devices > 0) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_FALSE(dne::comm::nccl_available());
  EXPECT_THROW(dne::comm::make_nccl_communicator(MPI_COMM_WORLD, node_local_rank()), dne::CommError);
  auto c = world();
  c->barrier();  // every rank got here
}

// ---- NCCL (gpu label) -------------------------------------------------------------------------

/// Empty when every rank has NCCL and its own CUDA device, else why not; all ranks agree.
std::string nccl_skip_reason() {
  if (!dne::comm::nccl_built()) return "built without NCCL";
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank(), MPI_INFO_NULL, &node);
  int node_size = 1;
  MPI_Comm_size(node, &node_size);
  MPI_Comm_free(&node);
  const int devices = dne::comm::cuda_device_count();
  int ok = devices >= node_size ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (ok) return "";
  return "NCCL needs a CUDA device per rank: " + std::to_string(devices) + " device(s) for " +
         std::to_string(node_size) + " rank(s) on this node (or on another rank's node)";
}

#define DNE_SKIP_WITHOUT_NCCL()                              \
  do {                                                       \
    const std::string dne_reason_ = nccl_skip_reason();      \
    if (!dne_reason_.empty()) GTEST_SKIP() << dne_reason_;   \
  } while (0)

// What /provenance and the device agreement ask of each CUDA device: a name and a PCI bus id for
// every device the runtime sees, "" past the last one (and everywhere without CUDA): never a throw.
TEST(CudaFacts, NameAndBusIdOfEveryVisibleDeviceAndNothingBeyond) {
  const int count = dne::comm::cuda_device_count();
  for (int i = 0; i < count; ++i) {
    EXPECT_FALSE(dne::comm::cuda_device_name(i).empty()) << i;
    const std::string bus = dne::comm::cuda_pci_bus_id(i);
    EXPECT_TRUE(std::regex_match(bus, std::regex(R"([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f])"))) << bus;
  }
  EXPECT_EQ(dne::comm::cuda_device_name(count), "");
  EXPECT_EQ(dne::comm::cuda_pci_bus_id(count), "");
  EXPECT_EQ(dne::comm::cuda_device_name(-1), "");
}

TEST(NcclCommunicator, AllreduceSumOnGpu) {
  DNE_SKIP_WITHOUT_NCCL();
  auto c = dne::comm::make_nccl_communicator(MPI_COMM_WORLD, node_local_rank());
  EXPECT_EQ(c->name(), "nccl");
  EXPECT_EQ(c->rank(), world_rank());
  EXPECT_EQ(c->size(), world_size());
  check_sums(*c, 1);
  check_sums(*c, 1000);
  check_sums(*c, 1 << 18);  // grows the device buffer
  check_sums(*c, 10);       // reuses it
  c->allreduce_sum(static_cast<double*>(nullptr), 0);
  EXPECT_EQ(c->bytes_communicated(), (1u + 1000u + (1u << 18) + 10u) * 12u);
}

TEST(NcclCommunicator, ControlCollectivesOverMpi) {
  DNE_SKIP_WITHOUT_NCCL();
  auto c = dne::comm::make_nccl_communicator(MPI_COMM_WORLD, node_local_rank());
  const int r = c->rank(), n = c->size();
  auto m = c->allreduce_minloc(r == 0 ? std::nan("") : 1.0, 50 - r);
  EXPECT_EQ(m.value, n == 1 ? kInf : 1.0);
  EXPECT_EQ(m.location, 50 - (n - 1));
  int value = r == n - 1 ? 7 : 0;
  c->broadcast(&value, sizeof value, n - 1);
  EXPECT_EQ(value, 7);
  std::vector<double> mine(static_cast<std::size_t>(r + 1), r);
  std::vector<double> expected;
  for (int q = 0; q < n; ++q) expected.insert(expected.end(), static_cast<std::size_t>(q + 1), q);
  EXPECT_EQ(c->allgather(mine.data(), mine.size()), expected);
  c->barrier();
  EXPECT_EQ(c->bytes_communicated(), 16u + sizeof value + 8u * static_cast<unsigned>(r + 1));
}

TEST(MpiCommunicator, RefusesDeviceBuffers) {
  auto c = world();
  EXPECT_FALSE(c->sums_device_memory());
  float x = 1.0f;
  EXPECT_THROW(c->allreduce_sum_device(&x, 1), dne::CommError);
  c->barrier();
}

#if defined(DNE_WITH_NCCL) && DNE_WITH_NCCL

TEST(NcclCommunicator, AllreduceSumOfDeviceBuffersInPlace) {
  // The editors' loss slots and gradient estimates: summed where they are, no host staging.
  DNE_SKIP_WITHOUT_NCCL();
  auto c = dne::comm::make_nccl_communicator(MPI_COMM_WORLD, node_local_rank());
  ASSERT_TRUE(c->sums_device_memory());
  const int n = c->size(), r = c->rank();
  for (const std::size_t len : {std::size_t{1}, std::size_t{1} << 20}) {
    std::vector<double> host(len);
    for (std::size_t i = 0; i < len; ++i) host[i] = (r + 1) * (static_cast<double>(i) + 0.5);
    double* device = nullptr;
    ASSERT_EQ(cudaMalloc(&device, len * sizeof(double)), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(device, host.data(), len * sizeof(double), cudaMemcpyHostToDevice), cudaSuccess);
    c->allreduce_sum_device(device, len);
    ASSERT_EQ(cudaMemcpy(host.data(), device, len * sizeof(double), cudaMemcpyDeviceToHost), cudaSuccess);
    cudaFree(device);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < len; ++i) wrong += host[i] != (static_cast<double>(i) + 0.5) * n * (n + 1) / 2.0;
    EXPECT_EQ(wrong, 0u) << len;
  }
}

TEST(NcclCommunicator, HungPeerAbortsWithinTheTimeout) {
  // Rank 1 stays away from the sum for 4 s; rank 0 must give up after comm.timeout_s = 2 s with
  // a CommError naming the timeout, abort, and refuse later sums, instead of hanging. Rank 1,
  // arriving late at a sum its aborted peer never joins, fails the same way.
  DNE_SKIP_WITHOUT_NCCL();
  if (world_size() < 2) GTEST_SKIP() << "needs a peer (2 ranks)";
  auto c = dne::comm::make_nccl_communicator(MPI_COMM_WORLD, node_local_rank(), 2.0);
  if (c->rank() == 1) {
    std::this_thread::sleep_for(std::chrono::seconds(4));
    float x = 1.0f;
    EXPECT_THROW(c->allreduce_sum(&x, 1), dne::CommError);
  } else if (c->rank() == 0) {
    float x = 1.0f;
    const auto start = std::chrono::steady_clock::now();
    try {
      c->allreduce_sum(&x, 1);
      ADD_FAILURE() << "the sum returned without its peer";
    } catch (const dne::CommError& e) {
      EXPECT_NE(std::string(e.what()).find("comm.timeout_s"), std::string::npos) << e.what();
    }
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_GE(waited, 2.0);
    EXPECT_LT(waited, 6.0);
    EXPECT_THROW(c->allreduce_sum(&x, 1), dne::CommError);  // aborted: refused at once
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

#endif

}  // namespace

int main(int argc, char** argv) { return dne_test::run_mpi_tests(argc, argv, "test_comm"); }
