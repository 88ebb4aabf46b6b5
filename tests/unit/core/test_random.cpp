// Counter-based streams: Philox4x32-10 known-answer vectors (Random123's published KAT) and the
// stream properties the determinism contract relies on.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "dne/core/random.hpp"

namespace {

TEST(Philox, KnownAnswerZero) {
  const auto out = dne::philox4x32({0, 0, 0, 0}, {0, 0});
  EXPECT_EQ(out[0], 0x6627e8d5u);
  EXPECT_EQ(out[1], 0xe169c58du);
  EXPECT_EQ(out[2], 0xbc57ac4cu);
  EXPECT_EQ(out[3], 0x9b00dbd8u);
}

TEST(Philox, KnownAnswerOnes) {
  const auto out = dne::philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                                   {0xffffffffu, 0xffffffffu});
  EXPECT_EQ(out[0], 0x408f276du);
  EXPECT_EQ(out[1], 0x41c83b0eu);
  EXPECT_EQ(out[2], 0xa20bc7c6u);
  EXPECT_EQ(out[3], 0x6d5451fdu);
}

TEST(Philox, KnownAnswerPi) {
  const auto out = dne::philox4x32({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                                   {0xa4093822u, 0x299f31d0u});
  EXPECT_EQ(out[0], 0xd16cfe09u);
  EXPECT_EQ(out[1], 0x94fdccebu);
  EXPECT_EQ(out[2], 0x5001e420u);
  EXPECT_EQ(out[3], 0x24126ea1u);
}

TEST(CounterStream, SameKeySameNumbersDifferentKeyDifferent) {
  dne::CounterStream a(42, dne::StreamPurpose::kTest, 3, 7), b(42, dne::StreamPurpose::kTest, 3, 7);
  dne::CounterStream c(42, dne::StreamPurpose::kTest, 3, 8), d(43, dne::StreamPurpose::kTest, 3, 7);
  int differ_c = 0, differ_d = 0;
  for (int i = 0; i < 100; ++i) {
    const double x = a.uniform();
    EXPECT_EQ(x, b.uniform());
    differ_c += x != c.uniform();
    differ_d += x != d.uniform();
  }
  EXPECT_EQ(differ_c, 100);
  EXPECT_EQ(differ_d, 100);
}

TEST(CounterStream, UniformAndNormalMoments) {
  dne::CounterStream s(1, dne::StreamPurpose::kTest, 0, 0);
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0;
  for (int i = 0; i < n; ++i) {
    const double u = s.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    su += u;
    const double z = s.normal();
    sn += z;
    sn2 += z * z;
  }
  // Standard errors: uniform mean 0.29/sqrt(n) = 6.5e-4; normal mean 2.2e-3; variance 3.2e-3.
  EXPECT_NEAR(su / n, 0.5, 4e-3);
  EXPECT_NEAR(sn / n, 0.0, 1e-2);
  EXPECT_NEAR(sn2 / n, 1.0, 1.5e-2);
}

TEST(CounterStream, BelowIsInRangeAndCoversIt) {
  dne::CounterStream s(5, dne::StreamPurpose::kTest, 0, 0);
  std::set<std::uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    const auto v = s.below(7);
    ASSERT_LT(v, 7u);
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 7u);
}

TEST(CounterStream, PermutationIsAPermutation) {
  dne::CounterStream s(9, dne::StreamPurpose::kTest, 0, 0);
  auto p = dne::random_permutation(50, s);
  ASSERT_EQ(p.size(), 50u);
  auto sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sorted[static_cast<std::size_t>(i)], i);
  EXPECT_FALSE(std::is_sorted(p.begin(), p.end()));
}

}  // namespace
