// How the ranks of a group agree that a step failed or that a stop was requested, so that no
// rank is left waiting in a collective that the others will never reach. Every step that may
// fail on some ranks only (a remote request that gave up, an image that would not decode) ends
// in agree_on_failure; steps with no agreement of their own reach one at stop_point. No Torch.
#pragma once

#include <exception>
#include <string>

#include "dne/comm/communicator.hpp"

namespace dne::comm {

/// Every rank of `group` calls this after a step that may fail on some ranks only (a remote
/// request that gave up): if any rank's step threw (`failure` set), that rank rethrows its own
/// error and the others throw PeerFailure, so no rank is left waiting in a later collective.
/// It is also a cancellation point: a stop requested on this rank (SIGTERM / SIGINT,
/// core/stop_signal.hpp) counts as this rank's failure, an Interrupted error.
void agree_on_failure(Communicator& group, const std::exception_ptr& failure);

/// A cancellation point between steps that have no agreement of their own: alone, it throws
/// Interrupted when a stop was requested; in a group of several ranks it is one collective
/// (agree_on_failure), so that the whole group stops at the same step.
void stop_point(Communicator& group, const std::string& where);

}  // namespace dne::comm
