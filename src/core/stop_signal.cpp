// SIGTERM / SIGINT recorded as a stop request (see stop_signal.hpp).
#include "dne/core/stop_signal.hpp"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <ctime>

#include "dne/core/errors.hpp"

namespace dne {
namespace {

// The first signal received (0: none) and when (CLOCK_MONOTONIC, ns). Written by the handler,
// read by any thread.
std::atomic<int> received_signal{0};
std::atomic<long long> received_at_ns{0};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<long long>::is_always_lock_free,
              "the stop flag must be async-signal-safe");

// A launcher often delivers one request twice: Ctrl-C reaches the ranks (SIGINT, the terminal's
// process group) and mpirun forwards SIGTERM a moment later; scancel signals the ranks and the
// mpirun that forwards to them. Such a repeat is not the user insisting.
constexpr long long kSameRequestNs = 3'000'000'000LL;

long long monotonic_ns() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe
  return static_cast<long long>(now.tv_sec) * 1'000'000'000LL + now.tv_nsec;
}

// The handlers StopOnSignal replaced, restored by its destructor.
struct sigaction previous_term = {}, previous_int = {};

extern "C" void on_stop_signal(int signal_number) {
  int first = 0;
  if (received_signal.compare_exchange_strong(first, signal_number)) {
    received_at_ns.store(monotonic_ns());
    return;
  }
  if ((first == SIGINT && signal_number == SIGTERM) || monotonic_ns() - received_at_ns.load() < kSameRequestNs) return;
  // A second signal: the user (or the batch system) wants out now. write and _exit only.
  static const char line[] = "dne: second signal received: exiting at once\n";
  const ssize_t ignored = write(STDERR_FILENO, line, sizeof line - 1);
  (void)ignored;
  _exit(128 + signal_number);
}

}  // namespace

StopOnSignal::StopOnSignal() {
  struct sigaction action = {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, &previous_term);
  sigaction(SIGINT, &action, &previous_int);
}

StopOnSignal::~StopOnSignal() {
  // After a stop request the handlers stay: the process is ending, and a late repeat of the same
  // request (mpirun's forwarded SIGTERM after Ctrl-C) must not kill it on its way out. A genuine
  // second signal still ends it at once.
  if (received_signal.load() == 0) {
    sigaction(SIGTERM, &previous_term, nullptr);
    sigaction(SIGINT, &previous_int, nullptr);
  }
  received_signal.store(0);  // the request belonged to this command
  received_at_ns.store(0);
}

int stop_signal() { return received_signal.load(); }

std::string signal_name(int signal_number) {
  if (signal_number == SIGTERM) return "SIGTERM";
  if (signal_number == SIGINT) return "SIGINT";
  return "signal " + std::to_string(signal_number);
}

void throw_if_stop_requested(const std::string& where) {
  if (const int s = stop_signal(); s != 0) throw Interrupted(signal_name(s) + " received " + where, s);
}

}  // namespace dne
