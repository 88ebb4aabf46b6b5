// Typed exceptions for dne-sweep.
//
// Every failure the user can cause (bad config, bad data, unwritable output) or the
// environment can cause (MPI, HDF5, budget) is thrown as one of these types, so `main`
// can map it to one clear line and an exit code: input errors exit 2, everything else 1.
#pragma once

#include <stdexcept>
#include <string>

namespace dne {

/// Base of all project errors. `exit_code()` is what the CLI returns for it.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
  virtual int exit_code() const { return 1; }
  virtual const char* kind() const { return "error"; }
};

/// Bad configuration: unknown key, wrong type, out-of-range value, unreadable file.
class ConfigError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
  const char* kind() const override { return "config error"; }
};

/// Bad data: unreadable image, malformed manifest, NaN pixels, inconsistent sizes.
class DataError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
  const char* kind() const override { return "data error"; }
};

/// Model problems: TorchScript file missing or with the wrong signature, NaN embeddings.
class ModelError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
  const char* kind() const override { return "model error"; }
};

/// Output problems: unwritable directory, HDF5 failures, malformed result files.
class StoreError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
  const char* kind() const override { return "store error"; }
};

/// Communication failures (MPI / NCCL).
class CommError : public Error {
 public:
  using Error::Error;
  const char* kind() const override { return "comm error"; }
};

/// Numerical failure during optimisation (NaN/Inf loss).
class NumericError : public Error {
 public:
  using Error::Error;
  const char* kind() const override { return "numeric error"; }
};

/// The machine cannot hold what was asked for (memory), found before any work.
class ResourceError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
  const char* kind() const override { return "resource error"; }
};

/// The embedding API's query budget would be exceeded by the requested call.
class BudgetExceeded : public Error {
 public:
  using Error::Error;
  const char* kind() const override { return "budget exceeded"; }
};

/// Another rank of the group failed where the group agrees on failures (e.g. its remote FM
/// request gave up while this rank's succeeded): this rank stops too, instead of waiting in a
/// collective. The scheduler reports the failing rank's own error, never this one.
class PeerFailure : public Error {
 public:
  using Error::Error;
  const char* kind() const override { return "peer failure"; }
};

/// The run was asked to stop (SIGTERM / SIGINT, core/stop_signal.hpp) and stopped at a
/// cancellation point: not a failure of the experiment, which stays pending. Exit 128 + signal.
class Interrupted : public Error {
 public:
  Interrupted(const std::string& what, int signal_number) : Error(what), signal_(signal_number) {}
  int exit_code() const override { return 128 + signal_; }
  const char* kind() const override { return "interrupted"; }
  int signal_number() const { return signal_; }

 private:
  int signal_;
};

/// An error that every rank meets identically before any collective work (e.g. a bad FM file
/// checked up front): `main` prints it once, from rank 0, and every rank exits normally with the
/// cause's exit code instead of aborting the job.
class PreflightError : public Error {
 public:
  explicit PreflightError(const Error& cause)
      : Error(cause.what()), kind_(cause.kind()), exit_code_(cause.exit_code()) {}
  /// The same error as another rank met it (received as text).
  PreflightError(const std::string& what, std::string kind, int exit_code)
      : Error(what), kind_(std::move(kind)), exit_code_(exit_code) {}
  int exit_code() const override { return exit_code_; }
  const char* kind() const override { return kind_.c_str(); }

 private:
  std::string kind_;
  int exit_code_;
};

}  // namespace dne
