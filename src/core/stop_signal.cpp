// SIGTERM / SIGINT recorded as a stop request (see stop_signal.hpp).
#include "dne/core/stop_signal.hpp"

#include <unistd.h>

#include <atomic>
#include <csignal>

#include "dne/core/errors.hpp"

namespace dne {
namespace {

// The first signal received (0: none). Written by the handler, read by any thread.
std::atomic<int> received_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the stop flag must be async-signal-safe");

// The handlers StopOnSignal replaced, restored by its destructor.
struct sigaction previous_term = {}, previous_int = {};

extern "C" void on_stop_signal(int signal_number) {
  int none = 0;
  if (received_signal.compare_exchange_strong(none, signal_number)) return;
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
  sigaction(SIGTERM, &previous_term, nullptr);
  sigaction(SIGINT, &previous_int, nullptr);
  received_signal.store(0);  // the request belonged to this command
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
