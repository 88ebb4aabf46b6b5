// The sweep's ledger (index rows, progress counts and lines, index.h5 rewritten at every
// report) and the run directory's lock, driven by hand. Compiled into test_sweep (its MPI main
// runs them on every rank; each rank works in its own folder).
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>

#include "dne/core/errors.hpp"
#include "dne/store/result_file.hpp"
#include "dne/sweep/ledger.hpp"
#include "dne/sweep/run_lock.hpp"

namespace {

std::filesystem::path own_folder(const std::string& name) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const auto dir = std::filesystem::temp_directory_path() /
                   (name + "_" + std::to_string(::getpid()) + "_" + std::to_string(rank));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(RunDirectoryLock, ASecondRunIsRefusedNamingTheHolderUntilTheFirstEnds) {
  const auto dir = own_folder("dne_lock_test");
  {
    const dne::sweep::RunDirectoryLock first(dir.string(), false);
    try {
      const dne::sweep::RunDirectoryLock second(dir.string(), false);
      ADD_FAILURE() << "a second lock on the same directory was granted";
    } catch (const dne::StoreError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("pid " + std::to_string(::getpid())), std::string::npos) << message;
      EXPECT_NE(message.find("--wait"), std::string::npos) << message;
    }
  }
  EXPECT_NO_THROW(dne::sweep::RunDirectoryLock(dir.string(), false));  // the first one's end released it
  std::filesystem::remove_all(dir);
}

TEST(SweepLedger, ReportsCountProgressPrintLinesAndRewriteTheIndex) {
  const auto dir = own_folder("dne_ledger_test");
  const auto index = (dir / "index.h5").string();
  std::vector<dne::store::IndexRow> rows(3);
  rows[0].id = "aaaa";
  rows[1].id = "bbbb";
  rows[2].id = "cccc";
  rows[2].status = "complete";  // resumed: its file existed before this run
  rows[2].resumed = 1;
  for (auto& r : rows) r.method = "none";
  std::ostringstream lines;
  dne::sweep::SweepLedger ledger(index, dne::store::IndexHeader{}, rows, {1.0, 1.0, 1.0}, &lines);

  dne::sweep::Report start;
  start.started = 0;
  ledger.report(start);
  auto p = ledger.progress();
  EXPECT_EQ(p.total, 3);
  EXPECT_EQ(p.done, 1);  // the resumed one
  EXPECT_EQ(p.resumed, 1);
  EXPECT_EQ(p.running, 1);
  EXPECT_EQ(ledger.rows()[0].status, "running");

  dne::sweep::Outcome ok;
  ok.ok = true;
  ok.editor_status = "complete";
  ok.metrics = {{"accuracy", 0.75}};
  dne::sweep::Report finish;
  finish.finished = 0;
  finish.outcome = &ok;
  finish.started = 1;
  ledger.report(finish);
  dne::sweep::Outcome bad;
  bad.error = "data: broken";
  bad.exit_code = 2;
  dne::sweep::Report fail;
  fail.finished = 1;
  fail.outcome = &bad;
  ledger.report(fail);

  p = ledger.progress();
  EXPECT_EQ(p.done, 2);
  EXPECT_EQ(p.failed, 1);
  EXPECT_EQ(p.running, 0);
  EXPECT_EQ(ledger.rows()[0].status, "complete");
  EXPECT_EQ(ledger.rows()[0].metrics.at("accuracy"), 0.75);
  EXPECT_EQ(ledger.rows()[1].status, "failed");
  EXPECT_EQ(ledger.rows()[1].error, "data: broken");
  EXPECT_EQ(ledger.worst_exit_code(), 2);
  EXPECT_NE(lines.str().find("[progress] 2/3 complete"), std::string::npos) << lines.str();
  // index.h5 as an independent reader sees it after the last report.
  const dne::store::H5Reader reader(index);
  EXPECT_EQ(reader.int_attribute("/", "complete"), 2);
  std::filesystem::remove_all(dir);
}

}  // namespace
