// NCCL implementation of Communicator (compiled only with DNE_WITH_NCCL: CMake found CUDA + NCCL).
//
// Sums (the bandwidth-heavy collective: dense gradient estimates) run through NCCL on this rank's
// GPU (the device its caller gives it): device buffers in place (allreduce_sum_device), host
// buffers through a page-locked bounce buffer and a device buffer. The NCCL unique id is created on group rank 0 and shared with MPI_Bcast over
// the group's MPI communicator; the small control collectives (min-loc, broadcast, all-gather,
// barrier) go through MPI. Without DNE_WITH_NCCL the functions below still exist: the checks
// return false / 0 and the factory throws CommError, so callers and tests need no #if.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>

#include "dne/comm/communicator.hpp"
#include "dne/core/errors.hpp"

namespace dne::comm {

/// How a communicator's NCCL handle is released. ncclCommDestroy is collective within a node:
/// on an error path (an exception unwinding on this rank while its peers carry on or wait) it
/// would make them wait comm.timeout_s; ncclCommAbort is local.
enum class NcclTeardown { kDestroy, kAbort };
/// kAbort while exceptions are in flight (`uncaught` = std::uncaught_exceptions()), else kDestroy.
constexpr NcclTeardown nccl_teardown(int uncaught) { return uncaught > 0 ? NcclTeardown::kAbort : NcclTeardown::kDestroy; }

#if defined(DNE_WITH_NCCL) && DNE_WITH_NCCL

/// True: this build has the NCCL communicator.
constexpr bool nccl_built() { return true; }
/// CUDA devices the runtime sees; 0 when there is no device or no driver (never throws).
int cuda_device_count();
/// True when the NCCL communicator can be built here: NCCL compiled in and at least one device.
bool nccl_available();
/// The CUDA device's name ("NVIDIA H200"), "" when it cannot be asked (never throws).
std::string cuda_device_name(int index);
/// The PCI bus id ("0000:3B:00.0") of a CUDA device, "" when it cannot be asked (never throws).
/// Physical GPUs are compared by it: with CUDA_VISIBLE_DEVICES set per rank, every rank's GPU is
/// its device 0.
std::string cuda_pci_bus_id(int index);
/// Collective over `comm` (caller-owned, not freed). Each rank sums on CUDA `device` (modulo the
/// visible devices): the caller's choice, the device the rank's FM works on (comm::DeviceChoice
/// gives it; run.device's rule assigns node-local rank % devices). All ranks of the group throw
/// CommError together when a rank has no device or two ranks of the group on one node would
/// share a device (NCCL forbids it). A sum unfinished after `timeout_s` (a dead or hung peer), or
/// an NCCL asynchronous error, aborts the communicator and throws CommError (comm.timeout_s); it
/// then refuses every later sum.
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, int device, double timeout_s = 600.0);

#else

constexpr bool nccl_built() { return false; }
inline int cuda_device_count() { return 0; }
inline bool nccl_available() { return false; }
inline std::string cuda_device_name(int) { return ""; }
inline std::string cuda_pci_bus_id(int) { return ""; }
inline std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm, int, double = 600.0) {
  throw CommError("NCCL communicator: this build has no NCCL (configure with CUDA and NCCL, DNE_WITH_NCCL)");
}

#endif

}  // namespace dne::comm
