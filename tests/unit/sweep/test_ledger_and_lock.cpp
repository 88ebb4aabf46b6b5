// The sweep's ledger (index rows, progress counts and lines, index.h5 rewritten at every
// report), the run directory's and an output file's lock (checked with flock(2) here), the stale
// temporaries, resuming a task from its file and a whole run_sweep, driven by hand. Compiled into
// test_sweep (its MPI main runs them on every rank; each rank works in its own folder).
#include <gtest/gtest.h>
#include <mpi.h>
#include <sys/file.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/store/result_file.hpp"
#include "dne/sweep/ledger.hpp"
#include "dne/sweep/run_lock.hpp"
#include "dne/sweep/sweep_driver.hpp"

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

/// Whether a fresh descriptor of `path` can take an exclusive flock now (released at once).
bool can_lock(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR);
  if (fd < 0) return false;
  const bool got = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
  ::close(fd);
  return got;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(OutputFileLock, HoldsAnFlockOnFileDotLockNamingItsHolder) {
  const auto dir = own_folder("dne_out_lock_test");
  const std::string file = (dir / "vit.fm").string(), lock = file + ".lock";
  {
    const dne::sweep::OutputFileLock held(file);
    ASSERT_TRUE(std::filesystem::exists(lock));
    EXPECT_FALSE(can_lock(lock));  // held, as flock(2) itself sees it
    const std::string note = read_all(lock);
    EXPECT_EQ(note.rfind("pid " + std::to_string(::getpid()) + " on host ", 0), 0u) << note;
    EXPECT_NE(note.find(" since "), std::string::npos) << note;
    try {
      const dne::sweep::OutputFileLock second(file);
      ADD_FAILURE() << "a second lock on the same output file was granted";
    } catch (const dne::StoreError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("--out '" + file + "'"), std::string::npos) << message;
      EXPECT_NE(message.find("dne pretrain"), std::string::npos) << message;
      EXPECT_NE(message.find("pid " + std::to_string(::getpid())), std::string::npos) << message;
    }
    const dne::sweep::OutputFileLock other((dir / "other.fm").string());  // another file: its own lock
  }
  EXPECT_TRUE(can_lock(lock));  // released when the holder ended
  EXPECT_FALSE(std::filesystem::exists(file));  // the lock never makes the file itself
  EXPECT_THROW(dne::sweep::OutputFileLock((dir / "missing" / "x.fm").string()), dne::StoreError);
  std::filesystem::remove_all(dir);
}

TEST(RunDirectoryLock, RemoveStaleTemporariesTakesOnlyTemporaryFilesOfTheThreeFolders) {
  const auto dir = own_folder("dne_stale_test");
  const auto touch = [&](const std::string& rel) {
    std::filesystem::create_directories((dir / rel).parent_path());
    std::ofstream(dir / rel) << "x";
  };
  for (const char* rel : {"index.h5.tmp.node1.4242", "index.h5", "experiments/abc.h5.tmp.node2.7",
                          "experiments/abc.h5", "cache/images-01.h5.tmp.node1.99", "cache/images-01.h5",
                          "experiments/deeper/x.h5.tmp.n.1", "notes.txt"})
    touch(rel);
  std::filesystem::create_directories(dir / "folder.tmp.n.1");  // a folder is never removed
  const dne::sweep::RunDirectoryLock lock(dir.string(), false);
  const auto removed = dne::sweep::remove_stale_temporaries(dir.string());
  EXPECT_EQ(std::set<std::string>(removed.begin(), removed.end()),
            (std::set<std::string>{(dir / "index.h5.tmp.node1.4242").string(), (dir / "experiments/abc.h5.tmp.node2.7").string(),
                                   (dir / "cache/images-01.h5.tmp.node1.99").string()}));
  EXPECT_EQ(removed.size(), 3u);
  for (const char* kept : {"index.h5", "experiments/abc.h5", "cache/images-01.h5", "experiments/deeper/x.h5.tmp.n.1",
                           "notes.txt", "folder.tmp.n.1", ".dne-run.lock"})
    EXPECT_TRUE(std::filesystem::exists(dir / kept)) << kept;
  EXPECT_TRUE(dne::sweep::remove_stale_temporaries(dir.string()).empty());  // nothing left to remove
  EXPECT_TRUE(dne::sweep::remove_stale_temporaries((dir / "none").string()).empty());
  std::filesystem::remove_all(dir);
}

/// An experiment file as the experiment writes it: root id and status, metrics, timings,
/// provenance, and a checksummed dataset of `marker` values (optionally /embeddings).
void write_experiment(const std::string& path, const std::string& id, float marker, bool embeddings = false) {
  dne::store::H5Writer w(path);
  w.attribute("/", "id", id);
  w.attribute("/", "status", std::string("budget: 1000 queries"));
  w.attribute("/metrics", "accuracy", 0.875);
  w.attribute("/timings", "total_s", 3.5);
  w.attribute("/provenance", "queries", std::int64_t{1000});
  w.attribute("/provenance", "group_size", std::int64_t{2});
  w.dataset("/test/score", std::vector<float>(64, marker), {64});
  if (embeddings) w.dataset("/embeddings/train/x", std::vector<float>{1, 2}, {1, 2});
  w.commit();
}

dne::sweep::SweepTask task_at(const std::string& path, const std::string& id) {
  dne::sweep::SweepTask task;
  task.row.id = id;
  task.row.method = "gezo";
  task.row.seed = 3;
  task.path = path;
  return task;
}

TEST(ResumeRow, AWholeFileOfTheSameIdIsCompleteWithItsResults) {
  const auto dir = own_folder("dne_resume_test");
  const std::string path = (dir / "abc.h5").string();
  const auto task = task_at(path, "abc");
  std::ostringstream log;
  EXPECT_EQ(dne::sweep::resume_row(task, &log).status, "pending");  // no file yet
  write_experiment(path, "abc", 0.5f);
  const auto row = dne::sweep::resume_row(task, &log);
  EXPECT_EQ(row.status, "complete");
  EXPECT_EQ(row.resumed, 1);
  EXPECT_EQ(row.file, "experiments/abc.h5");
  EXPECT_EQ(row.editor_status, "budget: 1000 queries");
  EXPECT_EQ(row.metrics, (std::map<std::string, double>{{"accuracy", 0.875}}));
  EXPECT_EQ(row.wall_s, 3.5);
  EXPECT_EQ(row.queries, 1000);
  EXPECT_EQ(row.ranks, 2);
  EXPECT_EQ(row.method, "gezo");  // the task's own fields are kept
  EXPECT_EQ(row.seed, 3);
  EXPECT_EQ(log.str(), "");
  // Another id in the file: computed again.
  EXPECT_EQ(dne::sweep::resume_row(task_at(path, "abd"), &log).status, "pending");
  // Embeddings asked for but absent: computed again; present: complete.
  auto wants = task;
  wants.needs_embeddings = true;
  EXPECT_EQ(dne::sweep::resume_row(wants, &log).status, "pending");
  write_experiment(path, "abc", 0.5f, true);
  EXPECT_EQ(dne::sweep::resume_row(wants, &log).status, "complete");
  // Not an HDF5 file at all: pending, nothing thrown.
  std::ofstream(dir / "junk.h5") << "not hdf5";
  EXPECT_EQ(dne::sweep::resume_row(task_at((dir / "junk.h5").string(), "abc"), nullptr).status, "pending");
  std::filesystem::remove_all(dir);
}

TEST(ResumeRow, ACorruptDatasetIsSaidOnTheLogAndComputedAgain) {
  const auto dir = own_folder("dne_resume_corrupt_test");
  const std::string path = (dir / "abc.h5").string();
  const float marker = 1234.5f;  // bytes easy to find in the file
  write_experiment(path, "abc", marker);
  std::string bytes = read_all(path);
  char pattern[8];
  std::memcpy(pattern, &marker, 4);
  std::memcpy(pattern + 4, &marker, 4);
  const auto at = bytes.find(std::string(pattern, 8));
  ASSERT_NE(at, std::string::npos);
  bytes[at + 5] = static_cast<char>(bytes[at + 5] ^ 0x40);  // one bit of the second value
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  std::ostringstream log;
  const auto row = dne::sweep::resume_row(task_at(path, "abc"), &log);
  EXPECT_EQ(row.status, "pending");
  EXPECT_EQ(row.resumed, 0);
  EXPECT_NE(log.str().find("computing it again"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("/test/score"), std::string::npos) << log.str();
  std::filesystem::remove_all(dir);
}

TEST(SweepSetup, RunSweepResumesCompleteFilesAndRunsOnlyThePendingTasks) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const auto dir = own_folder("dne_run_sweep_test");
  std::vector<dne::sweep::SweepTask> tasks;
  for (const char* id : {"t0", "t1", "t2", "t3"})
    tasks.push_back(task_at((dir / (std::string(id) + ".h5")).string(), id));
  tasks[3].cost = 5.0;
  write_experiment(tasks[1].path, "t1", 0.25f);  // finished by an earlier run
  dne::sweep::SweepSetup setup;
  setup.layout = dne::sweep::plan_groups(rank, size, 1);
  const dne::sweep::GroupComm group(MPI_COMM_WORLD, setup.layout);
  setup.group = group.get();
  setup.out_dir = dir.string();
  std::ostringstream progress;
  setup.progress = rank == 0 ? &progress : nullptr;
  // One rank runs all three pending tasks: a kill before a 4th start (kill_after = 3) never fires.
  if (size == 1) setup.faults = dne::sweep::FaultInjection{0, 3};
  std::vector<int> ran(4, 0);
  std::vector<std::size_t> order;
  const int code = dne::sweep::run_sweep(setup, tasks, [&](std::size_t t) {
    ++ran.at(t);
    order.push_back(t);
    dne::sweep::Outcome o;
    o.ok = true;
    o.editor_status = "complete";
    o.metrics["task"] = static_cast<double>(t);
    return o;
  }, [](std::size_t) { ADD_FAILURE() << "nothing failed, nothing to discard"; });
  EXPECT_EQ(code, 0);
  std::vector<int> total(4, 0);
  MPI_Allreduce(ran.data(), total.data(), 4, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(total, (std::vector<int>{1, 0, 1, 1}));  // t1 resumed, not run again
  if (size == 1) {
    EXPECT_EQ(order, (std::vector<std::size_t>{3, 0, 2}));  // most expensive first
  }
  if (rank == 0) {
    const dne::store::H5Reader index((dir / "index.h5").string());
    EXPECT_EQ(index.int_attribute("/", "complete"), 4);
    EXPECT_NE(progress.str().find("4/4 complete"), std::string::npos) << progress.str();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
