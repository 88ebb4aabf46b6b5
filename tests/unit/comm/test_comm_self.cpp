// Single-rank communicator identities and the block split that shards candidates over a group.
// Expected values are worked out by hand in the comments (no MPI: SelfCommunicator needs none).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "dne/comm/communicator.hpp"
#include "dne/core/errors.hpp"

namespace {

using dne::comm::shard_range;
using Range = std::pair<std::size_t, std::size_t>;

TEST(ShardRange, UnevenSplits) {
  // 10 items over 3 ranks: 10 = 3 * 3 + 1, so sizes 4, 3, 3.
  EXPECT_EQ(shard_range(10, 0, 3), (Range{0, 4}));
  EXPECT_EQ(shard_range(10, 1, 3), (Range{4, 7}));
  EXPECT_EQ(shard_range(10, 2, 3), (Range{7, 10}));
  // 7 items over 4 ranks: 7 = 4 * 1 + 3, so sizes 2, 2, 2, 1.
  EXPECT_EQ(shard_range(7, 0, 4), (Range{0, 2}));
  EXPECT_EQ(shard_range(7, 1, 4), (Range{2, 4}));
  EXPECT_EQ(shard_range(7, 2, 4), (Range{4, 6}));
  EXPECT_EQ(shard_range(7, 3, 4), (Range{6, 7}));
  // 11 items over 2 ranks: 6, 5.
  EXPECT_EQ(shard_range(11, 0, 2), (Range{0, 6}));
  EXPECT_EQ(shard_range(11, 1, 2), (Range{6, 11}));
}

TEST(ShardRange, EvenSplit) {
  // 12 items over 3 ranks: 4 each.
  EXPECT_EQ(shard_range(12, 0, 3), (Range{0, 4}));
  EXPECT_EQ(shard_range(12, 1, 3), (Range{4, 8}));
  EXPECT_EQ(shard_range(12, 2, 3), (Range{8, 12}));
}

TEST(ShardRange, FewerItemsThanRanks) {
  // 2 items over 3 ranks: 1, 1, 0 (the last rank idles with an empty range at the end).
  EXPECT_EQ(shard_range(2, 0, 3), (Range{0, 1}));
  EXPECT_EQ(shard_range(2, 1, 3), (Range{1, 2}));
  EXPECT_EQ(shard_range(2, 2, 3), (Range{2, 2}));
  // 3 items over 5 ranks: 1, 1, 1, 0, 0.
  EXPECT_EQ(shard_range(3, 2, 5), (Range{2, 3}));
  EXPECT_EQ(shard_range(3, 3, 5), (Range{3, 3}));
  EXPECT_EQ(shard_range(3, 4, 5), (Range{3, 3}));
  // Nothing to split: every range is empty.
  EXPECT_EQ(shard_range(0, 0, 2), (Range{0, 0}));
  EXPECT_EQ(shard_range(0, 1, 2), (Range{0, 0}));
}

TEST(ShardRange, OneRankTakesEverything) {
  EXPECT_EQ(shard_range(17, 0, 1), (Range{0, 17}));
  EXPECT_EQ(shard_range(1, 0, 1), (Range{0, 1}));
  EXPECT_EQ(shard_range(0, 0, 1), (Range{0, 0}));
}

TEST(ShardRange, BlocksTileTheRangeForManyShapes) {
  // Independent check: the blocks are contiguous, cover [0, total), and sizes are
  // ceil(total / size) for the first total % size ranks and floor(total / size) after.
  for (std::size_t total = 0; total < 40; ++total)
    for (int size = 1; size < 9; ++size) {
      const auto s = static_cast<std::size_t>(size);
      std::size_t expected_begin = 0;
      for (int r = 0; r < size; ++r) {
        const auto [b, e] = shard_range(total, r, size);
        ASSERT_EQ(b, expected_begin) << total << " over " << size << ", rank " << r;
        const std::size_t expected_size = total / s + (static_cast<std::size_t>(r) < total % s ? 1 : 0);
        ASSERT_EQ(e - b, expected_size) << total << " over " << size << ", rank " << r;
        expected_begin = e;
      }
      ASSERT_EQ(expected_begin, total);
    }
}

TEST(ShardRange, RejectsBadRankOrSize) {
  EXPECT_THROW(shard_range(5, 0, 0), dne::CommError);
  EXPECT_THROW(shard_range(5, 3, 3), dne::CommError);
  EXPECT_THROW(shard_range(5, -1, 3), dne::CommError);
}

TEST(SelfCommunicator, IdentityAndName) {
  auto c = dne::comm::make_self_communicator();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);
  EXPECT_EQ(c->name(), "self");
  EXPECT_EQ(c->bytes_communicated(), 0u);
}

TEST(SelfCommunicator, SumsLeaveDataUnchanged) {
  auto c = dne::comm::make_self_communicator();
  double d[3] = {1.5, -2.0, 3.0};
  c->allreduce_sum(d, 3);
  EXPECT_EQ(d[0], 1.5);
  EXPECT_EQ(d[1], -2.0);
  EXPECT_EQ(d[2], 3.0);
  float f[2] = {0.25f, 4.0f};
  c->allreduce_sum(f, 2);
  EXPECT_EQ(f[0], 0.25f);
  EXPECT_EQ(f[1], 4.0f);
  c->allreduce_sum(static_cast<float*>(nullptr), 0);  // empty sum is fine
  EXPECT_EQ(c->bytes_communicated(), 3 * 8u + 2 * 4u);
}

TEST(SelfCommunicator, MinLocReturnsInputWithNaNAsInfinity) {
  auto c = dne::comm::make_self_communicator();
  auto m = c->allreduce_minloc(-3.5, 42);
  EXPECT_EQ(m.value, -3.5);
  EXPECT_EQ(m.location, 42);
  m = c->allreduce_minloc(std::nan(""), 7);
  EXPECT_EQ(m.value, std::numeric_limits<double>::infinity());
  EXPECT_EQ(m.location, 7);
  const long long big = (1LL << 40) + 3;  // 64-bit locations survive
  m = c->allreduce_minloc(0.0, big);
  EXPECT_EQ(m.location, big);
  EXPECT_EQ(c->bytes_communicated(), 3 * 16u);
}

TEST(SelfCommunicator, BroadcastAllgatherBarrier) {
  auto c = dne::comm::make_self_communicator();
  int value = 17;
  c->broadcast(&value, sizeof value, 0);
  EXPECT_EQ(value, 17);
  EXPECT_THROW(c->broadcast(&value, sizeof value, 1), dne::CommError);
  const double g[2] = {1, 2};
  EXPECT_EQ(c->allgather(g, 2), (std::vector<double>{1, 2}));
  EXPECT_TRUE(c->allgather(nullptr, 0).empty());
  c->barrier();
  EXPECT_EQ(c->bytes_communicated(), 4u + 2 * 8u);  // barrier and the failed broadcast count nothing
}

}  // namespace
