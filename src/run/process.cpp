// World rank 0's work shared with the job, and Torch threads per rank (see process.hpp).
#include "dne/run/process.hpp"

#include <mpi.h>

#include <algorithm>
#include <iostream>
#include <sstream>
#include <thread>

#include "dne/core/errors.hpp"
#include "dne/sweep/scheduler.hpp"

namespace dne::run {

std::string on_rank0_shared(const ProcessInfo& process, const std::string& context, const std::function<std::string()>& work) {
  std::string payload;
  if (process.rank == 0) {
    try {
      payload = "ok\n" + work();
    } catch (const Error& e) {
      payload = "error\n" + std::to_string(e.exit_code()) + "\n" + e.kind() + "\n" + e.what();
    } catch (const std::exception& e) {
      payload = "error\n1\nerror\n" + context + ": " + e.what();
    }
  }
  if (process.world_size > 1) sweep::broadcast_politely(MPI_COMM_WORLD, payload, 0);
  std::istringstream in(payload);
  std::string status, code, kind;
  std::getline(in, status);
  if (status == "ok") return payload.substr(3);
  std::getline(in, code);
  std::getline(in, kind);
  throw PreflightError(payload.substr(static_cast<std::size_t>(in.tellg())), kind, std::stoi(code));
}
int choose_threads(long requested, const ProcessInfo& process) {
  if (requested > 0) return static_cast<int>(requested);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, process.local_size));
}

void say_deprecated_keys(const config::ConfigSource& source, const ProcessInfo& process) {
  if (process.rank != 0 || source.deprecated.empty()) return;
  for (const auto& note : source.deprecated)
    std::cout << "# deprecated: " << note << " (the same key; experiment ids do not change)\n";
  std::cout << std::flush;
}

}  // namespace dne::run
