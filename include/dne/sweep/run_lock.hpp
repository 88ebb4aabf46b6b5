// One `dne run` per run directory: an exclusive flock(2) on DIR/.dne-run.lock, held by world
// rank 0 for the whole run and released by the kernel when the process ends (also by SIGKILL).
//
// A second run on the same directory gets a StoreError naming the holder (host, pid, start
// time, written into the lock file by the holder), or waits for it with `wait`. While the lock
// is held, no other writer can be alive in the directory, so every temporary file a writer
// leaves between its write and its rename (`<file>.tmp.<host>.<pid>`) belongs to a dead run:
// `remove_stale_temporaries` deletes them. flock is advisory and works on local file systems
// and on NFS v4 / Lustre with flock support (on others it may lock per node only). Torch-free.
#pragma once

#include <string>
#include <vector>

namespace dne::sweep {

class RunDirectoryLock {
 public:
  /// Lock `dir`; throws StoreError naming the holder if another run has it (wait = false), or
  /// blocks until it is free (wait = true; `on_wait` is called once with the holder first; the
  /// wait polls, and a SIGTERM / SIGINT received meanwhile throws Interrupted, core/stop_signal.hpp).
  RunDirectoryLock(const std::string& dir, bool wait, void (*on_wait)(const std::string& holder) = nullptr);
  ~RunDirectoryLock();
  RunDirectoryLock(const RunDirectoryLock&) = delete;
  RunDirectoryLock& operator=(const RunDirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

/// The same lock for one output file (`dne pretrain --out F`): an exclusive flock on "F.lock",
/// held while the file and its checkpoint "F.ckpt" are written; a second writer gets a
/// StoreError naming the holder.
class OutputFileLock {
 public:
  explicit OutputFileLock(const std::string& file);
  ~OutputFileLock();
  OutputFileLock(const OutputFileLock&) = delete;
  OutputFileLock& operator=(const OutputFileLock&) = delete;

 private:
  int fd_ = -1;
};

/// Remove the temporary files (`*.tmp.<host>.<pid>`) in `dir`, `dir`/experiments and `dir`/cache; returns
/// their paths. Call only while holding the directory's lock.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

}  // namespace dne::sweep
