// A GoogleTest program whose cases pass, skip or fail on request: the fixture of
// tests/python/test_gtest_verdict.py, which checks how tests/gtest_verdict.py turns cases into one
// ctest verdict (issue 26). DNE_VERDICT_FAIL_RANK=R makes Verdict.FailsWhenAsked fail on world
// rank R (the launcher's variable; 0 without one).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace {

int world_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return 0;
}

TEST(Verdict, Passes) { EXPECT_EQ(1 + 1, 2); }

TEST(Verdict, Skips) { GTEST_SKIP() << "no device here"; }

TEST(Verdict, FailsWhenAsked) {
  const char* rank = std::getenv("DNE_VERDICT_FAIL_RANK");
  if (rank != nullptr && std::atoi(rank) == world_rank()) ADD_FAILURE() << "asked to fail on rank " << rank;
}

}  // namespace
