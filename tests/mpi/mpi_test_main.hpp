// Shared main() of the GoogleTest programs that run under mpiexec (test_comm, test_sweep).
//
// Every rank runs every test. Rank 0 prints GoogleTest's usual output; the other ranks print only
// their failures, prefixed with the rank. The process exits non-zero on every rank if any rank
// failed. MPI is initialised with MPI_THREAD_MULTIPLE, as `dne` does (the sweep scheduler needs it).
#pragma once

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <string>

namespace dne_test {

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

inline int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  // The test's name is kept here: UnitTest::current_test_info() would deadlock inside
  // OnTestPartResult (GoogleTest holds its mutex while reporting).
  void OnTestStart(const ::testing::TestInfo& test) override {
    test_ = std::string(test.test_suite_name()) + "." + test.name();
  }
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] FAILED %s at %s:%d\n%s\n", rank_, test_.c_str(),
                 result.file_name() ? result.file_name() : "?", result.line_number(), result.message());
    std::fflush(stderr);
  }

 private:
  int rank_;
  std::string test_;
};

/// The whole main(): MPI set-up, the tests on every rank, agreement on the exit code.
inline int run_mpi_tests(int argc, char** argv, const char* program) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int failed_ranks = 0;
  MPI_Allreduce(&failed, &failed_ranks, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (failed_ranks > 0 && rank == 0) std::fprintf(stderr, "%s: %d rank(s) failed\n", program, failed_ranks);
  MPI_Finalize();
  return failed_ranks > 0 ? 1 : 0;
}

}  // namespace dne_test
