// The run directory's lock and the clean-up of dead writers' temporary files (see run_lock.hpp).
#include "dne/sweep/run_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <thread>

#include "dne/core/errors.hpp"
#include "dne/core/host.hpp"
#include "dne/core/stop_signal.hpp"

namespace fs = std::filesystem;

namespace dne::sweep {
namespace {

std::string lock_path(const std::string& dir) { return (fs::path(dir) / ".dne-run.lock").string(); }

/// What the holder wrote into the lock file ("pid P on host H since T"), or a fallback.
std::string holder_of(int fd) {
  char text[256] = {};
  const ssize_t n = pread(fd, text, sizeof text - 1, 0);
  std::string s = n > 0 ? std::string(text, static_cast<std::size_t>(n)) : std::string();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
  return s.empty() ? "another process" : s;
}

/// An exclusive flock on `path` (created), with this process's note written into it; `what`
/// names what it guards in messages ("output directory 'D'", "--out 'F'"), `who` the kind of
/// process that holds it, `advice` what a refused user can do. Returns the descriptor.
int acquire_lock(const std::string& path, const std::string& what, const std::string& who, const std::string& advice,
                 bool wait, void (*on_wait)(const std::string&)) {
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw StoreError(what + ": cannot open its lock file " + path + ": " + std::strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error != EWOULDBLOCK) {
      close(fd);
      throw StoreError(what + ": cannot lock " + path + ": " + std::strerror(error));
    }
    const std::string holder = holder_of(fd);
    if (!wait) {
      close(fd);
      throw StoreError(what + " is in use by another " + who + " (" + holder + "); " + advice);
    }
    if (on_wait != nullptr) on_wait(holder);
    // Polled, not a blocking flock: the wait is a cancellation point (SIGTERM / SIGINT).
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int again = errno;
      if (again != EWOULDBLOCK && again != EINTR) {
        close(fd);
        throw StoreError(what + ": cannot lock " + path + ": " + std::strerror(again));
      }
      if (const int s = stop_signal(); s != 0) {
        close(fd);
        throw Interrupted(signal_name(s) + " received while waiting for the " + what + " (--wait)", s);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  const std::string host = host_name();
  const std::time_t now = std::time(nullptr);
  char when[32] = "";
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  const std::string me = "pid " + std::to_string(getpid()) + " on host " + host + " since " + when + "\n";
  if (ftruncate(fd, 0) != 0 || pwrite(fd, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    // The lock holds without the note; a second process then names "another process".
  }
  return fd;
}

}  // namespace

RunDirectoryLock::RunDirectoryLock(const std::string& dir, bool wait, void (*on_wait)(const std::string&))
    : fd_(acquire_lock(lock_path(dir), "output directory '" + dir + "'",
                       "dne run", "wait for it to finish, or pass --wait to queue behind it", wait, on_wait)) {}

OutputFileLock::OutputFileLock(const std::string& file)
    : fd_(acquire_lock(file + ".lock", "--out '" + file + "'", "dne pretrain",
                       "wait for it to finish, or write elsewhere", false, nullptr)) {}

OutputFileLock::~OutputFileLock() {
  if (fd_ >= 0) close(fd_);  // releases the lock
}

RunDirectoryLock::~RunDirectoryLock() {
  if (fd_ >= 0) close(fd_);  // releases the lock
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  std::vector<std::string> removed;
  for (const auto& folder : {fs::path(dir), fs::path(dir) / "experiments", fs::path(dir) / "cache"}) {
    std::error_code ec;
    for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.find(".tmp.") == std::string::npos || !it->is_regular_file(ec)) continue;
      if (fs::remove(it->path(), ec)) removed.push_back(it->path().string());
    }
  }
  return removed;
}

}  // namespace dne::sweep
