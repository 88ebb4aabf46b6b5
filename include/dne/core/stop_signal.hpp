// SIGTERM and SIGINT as a request to stop, for long-running commands (`dne run`).
//
// SLURM sends SIGTERM at a job's time limit (then SIGKILL after KillWait), mpirun forwards it to
// every rank (then SIGKILL after odls_base_sigkill_timeout), and Ctrl-C sends SIGINT. While a
// `StopOnSignal` lives, the first of these signals is only recorded: the work polls
// `stop_signal()` at its cancellation points and stops cleanly (sweep/scheduler.hpp,
// comm::agree_on_failure). A second signal ends the process at once with 128 + signal,
// unless it is the same request delivered twice by a launcher: a SIGTERM after a SIGINT (mpirun
// forwarding Ctrl-C), or any repeat within 3 s of the first.
//
// A signal handler can reach nothing but process-wide state, so the recorded signal is the one
// piece of it here (an async-signal-safe lock-free atomic). No Torch, no MPI.
#pragma once

#include <string>

namespace dne {

/// Installs the handlers for SIGTERM and SIGINT for its lifetime; its destructor forgets the
/// recorded signal and restores the previous handlers, unless a signal was received (then they
/// stay, so that a late repeat of the request does not kill the process on its way out). Handlers restart interrupted system calls
/// (SA_RESTART): I/O in flight is not disturbed. One at a time per process.
class StopOnSignal {
 public:
  StopOnSignal();
  ~StopOnSignal();
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;
};

/// The first SIGTERM / SIGINT received while a StopOnSignal was installed; 0 if none.
int stop_signal();

/// "SIGTERM", "SIGINT", or "signal N".
std::string signal_name(int signal_number);

/// A cancellation point: throws Interrupted ("<signal> received <where>") when a stop was requested.
void throw_if_stop_requested(const std::string& where);

}  // namespace dne
