// Failure and stop agreement over a rank group (see group_agreement.hpp).
#include "dne/comm/group_agreement.hpp"

#include "dne/core/errors.hpp"
#include "dne/core/stop_signal.hpp"

namespace dne::comm {

namespace {

/// An Interrupted error when a stop was requested on this rank, else nothing.
std::exception_ptr requested_stop(const std::string& where) {
  const int s = stop_signal();
  return s == 0 ? nullptr : std::make_exception_ptr(Interrupted(signal_name(s) + " received " + where, s));
}

}  // namespace

void agree_on_failure(Communicator& group, const std::exception_ptr& given) {
  const std::exception_ptr failure = given ? given : requested_stop("while the group worked");
  double failed = failure ? 1.0 : 0.0;
  group.allreduce_sum(&failed, 1);
  if (failure) std::rethrow_exception(failure);
  if (failed > 0.0)
    throw PeerFailure(std::to_string(static_cast<int>(failed)) + " other rank(s) of the group failed (see the group's error)");
}

void stop_point(Communicator& group, const std::string& where) {
  if (group.size() == 1) return throw_if_stop_requested(where);
  agree_on_failure(group, requested_stop(where));
}

}  // namespace dne::comm
