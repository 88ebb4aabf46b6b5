// Dynamic rank-group scheduler (see scheduler.hpp).
//
// Messages travel on a private duplicate of the world communicator:
//   leader -> rank 0, tag kReport: int64 finished task (-1 on the first request), int32 group,
//                                  int32 the signal the leader received (0: none), then the
//                                  encoded Outcome of the finished task;
//   rank 0 -> leader, tag kAssign: int64 next task, or -1 when the queue is empty.
// Waiting ranks poll with a short sleep instead of spinning in a blocking call, so that a rank
// that waits (rank 0's coordinator, a leader waiting for its answer, a finished or leftover rank
// at the end) leaves its core to the ranks that compute (oversubscribed nodes, e.g. 2 cores).
#include "dne/sweep/scheduler.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <exception>
#include <optional>
#include <thread>

#include "dne/core/errors.hpp"
#include "dne/core/stop_signal.hpp"
#include "dne/core/text.hpp"

namespace dne::sweep {
namespace {

constexpr int kReport = 7101;
constexpr int kAssign = 7102;
constexpr auto kPoll = std::chrono::microseconds(500);

class Writer {
 public:
  template <class T>
  void put(const T& v) {
    const auto* p = reinterpret_cast<const char*>(&v);
    bytes_.append(p, sizeof v);
  }
  void put_string(const std::string& s) {
    put(static_cast<std::uint32_t>(s.size()));
    bytes_ += s;
  }
  std::string take() { return std::move(bytes_); }

 private:
  std::string bytes_;
};

class Reader {
 public:
  explicit Reader(const std::string& bytes) : bytes_(bytes) {}
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string get_string() {
    const auto n = get<std::uint32_t>();
    need(n);
    std::string s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string rest() const { return bytes_.substr(pos_); }

 private:
  void need(std::size_t n) const {
    if (pos_ + n > bytes_.size()) throw CommError("scheduler: truncated message");
  }
  const std::string& bytes_;
  std::size_t pos_ = 0;
};

/// Wait for `request` without spinning.
void wait_politely(MPI_Request* request) {
  int done = 0;
  for (;;) {
    MPI_Test(request, &done, MPI_STATUS_IGNORE);
    if (done) return;
    std::this_thread::sleep_for(kPoll);
  }
}

}  // namespace

void broadcast_politely(MPI_Comm comm, std::string& text, int root) {
  unsigned long long length = text.size();
  MPI_Request request;
  MPI_Ibcast(&length, 1, MPI_UNSIGNED_LONG_LONG, root, comm, &request);
  wait_politely(&request);
  text.resize(static_cast<std::size_t>(length));
  if (length == 0) return;
  MPI_Ibcast(text.data(), static_cast<int>(length), MPI_CHAR, root, comm, &request);
  wait_politely(&request);
}

std::pair<long, int> min_location_politely(MPI_Comm comm, long value) {
  struct {
    long value;
    int rank;
  } mine{value, 0}, least{0, 0};
  MPI_Comm_rank(comm, &mine.rank);
  MPI_Request request;
  MPI_Iallreduce(&mine, &least, 1, MPI_LONG_INT, MPI_MINLOC, comm, &request);
  wait_politely(&request);
  return {least.value, least.rank};
}

namespace {

/// A caught exception (nullptr: not a std::exception) as text: its kind, the first line of its
/// message (valid UTF-8: it goes to index.h5 and the progress lines) and its exit code.
struct ErrorText {
  std::string kind = "internal error";
  std::string message = "an exception that is not a std::exception";
  int exit_code = 1;
};

ErrorText describe(const std::exception* e) {
  ErrorText t;
  if (e == nullptr) return t;
  t.message = valid_utf8(e->what());
  t.message = t.message.substr(0, t.message.find('\n'));
  if (const auto* d = dynamic_cast<const Error*>(e)) {
    t.kind = d->kind();
    t.exit_code = d->exit_code();
  }
  return t;
}

/// The outcome of a caught exception: "kind: message", its exit code, and whether it was a
/// PeerFailure or an interruption.
Outcome failure_of(const std::exception* e) {
  const auto text = describe(e);
  Outcome o;
  o.error = text.kind + ": " + text.message;
  o.exit_code = text.exit_code;
  o.peer = dynamic_cast<const PeerFailure*>(e) != nullptr;
  o.interrupted = dynamic_cast<const Interrupted*>(e) != nullptr;
  return o;
}

/// What the coordinator ended with: the first error met while booking, if any.
struct CoordinatorEnd {
  ErrorText failure;
  bool failed = false;
};

/// World rank 0's coordinator: answers requests until every group has been told to stop, or
/// until `abandon` is set (rank 0's main thread left run_dynamic by an exception). After a
/// booking error, a stop signal (rank 0's or a leader's) or an interrupted task, every request
/// is answered with -1 (stop), so that no leader waits for an answer that never comes.
CoordinatorEnd coordinate(MPI_Comm comm, int groups, const std::vector<std::size_t>& order, Observer* observer,
                          const std::atomic<bool>& abandon) {
  std::size_t next = 0;
  int active = groups;
  CoordinatorEnd end;
  bool stopping = false;
  while (active > 0 && !abandon.load()) {
    int flag = 0;
    MPI_Status status;
    MPI_Iprobe(MPI_ANY_SOURCE, kReport, comm, &flag, &status);
    if (!flag) {
      std::this_thread::sleep_for(kPoll);
      continue;
    }
    int count = 0;
    MPI_Get_count(&status, MPI_CHAR, &count);
    std::string message(static_cast<std::size_t>(count), '\0');
    MPI_Recv(message.data(), count, MPI_CHAR, status.MPI_SOURCE, kReport, comm, MPI_STATUS_IGNORE);
    std::int64_t assign = -1;
    try {
      Reader in(message);
      const auto finished = in.get<std::int64_t>();
      const auto group = in.get<std::int32_t>();
      const auto leader_signal = in.get<std::int32_t>();
      const Outcome outcome = finished >= 0 ? decode(in.rest()) : Outcome{};
      stopping = stopping || stop_signal() != 0 || leader_signal != 0 || outcome.interrupted;
      const std::int64_t candidate =
          !end.failed && !stopping && next < order.size() ? static_cast<std::int64_t>(order[next]) : -1;
      if (observer != nullptr)
        observer->report(Report{group, static_cast<long>(finished), finished >= 0 ? &outcome : nullptr,
                                static_cast<long>(candidate)});
      if (candidate >= 0) {  // handed out only once the observer has booked it
        assign = candidate;
        ++next;
      }
    } catch (const std::exception& e) {
      if (!end.failed) end = CoordinatorEnd{describe(&e), true};
    } catch (...) {
      if (!end.failed) end = CoordinatorEnd{describe(nullptr), true};
    }
    if (assign < 0) --active;
    MPI_Send(&assign, 1, MPI_INT64_T, status.MPI_SOURCE, kAssign, comm);
  }
  return end;
}

/// Stops and joins a still-running coordinator when rank 0's main thread leaves run_dynamic by an
/// exception, so that no thread of this process is inside MPI when main() aborts or finalises.
struct JoinOnUnwind {
  std::optional<std::thread>& thread;
  std::atomic<bool>& abandon;
  ~JoinOnUnwind() {
    abandon.store(true);
    if (thread && thread->joinable()) thread->join();
  }
};

/// Every rank of `group` learns the outcome of its lowest failing rank (collective over `group`);
/// a rank's own failure comes before a PeerFailure (which only says that another rank failed).
Outcome first_failure(MPI_Comm group, int group_rank, const Outcome& mine) {
  int size = 1;
  MPI_Comm_size(group, &size);
  int first = mine.ok ? 2 * size : mine.peer ? size + group_rank : group_rank;
  MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, group);
  first %= size;
  std::string bytes = group_rank == first ? encode(mine) : std::string();
  auto length = static_cast<std::int64_t>(bytes.size());
  MPI_Bcast(&length, 1, MPI_INT64_T, first, group);
  bytes.resize(static_cast<std::size_t>(length));
  MPI_Bcast(bytes.data(), static_cast<int>(length), MPI_CHAR, first, group);
  return decode(bytes);
}

/// A group leader's request: report `finished` (with its outcome) and get the next task.
std::int64_t ask_for_task(MPI_Comm comm, std::int64_t finished, int group, const Outcome* outcome) {
  Writer w;
  w.put(finished);
  w.put(static_cast<std::int32_t>(group));
  w.put(static_cast<std::int32_t>(stop_signal()));
  std::string message = w.take();
  if (outcome != nullptr) message += encode(*outcome);
  MPI_Send(message.data(), static_cast<int>(message.size()), MPI_CHAR, 0, kReport, comm);
  std::int64_t assign = -1;
  MPI_Request request;
  MPI_Irecv(&assign, 1, MPI_INT64_T, 0, kAssign, comm, &request);
  wait_politely(&request);
  return assign;
}

}  // namespace

std::string encode(const Outcome& o) {
  Writer w;
  w.put(static_cast<std::uint8_t>(o.ok ? 1 : 0));
  w.put_string(o.error);
  w.put(static_cast<std::int32_t>(o.exit_code));
  w.put_string(o.editor_status);
  w.put(o.wall_s);
  w.put(o.queries);
  w.put(static_cast<std::int32_t>(o.ranks));
  w.put(static_cast<std::uint8_t>(o.interrupted ? 1 : 0));
  w.put(static_cast<std::uint32_t>(o.metrics.size()));
  for (const auto& [name, value] : o.metrics) {
    w.put_string(name);
    w.put(value);
  }
  return w.take();
}

Outcome decode(const std::string& bytes) {
  Reader r(bytes);
  Outcome o;
  o.ok = r.get<std::uint8_t>() != 0;
  o.error = r.get_string();
  o.exit_code = r.get<std::int32_t>();
  o.editor_status = r.get_string();
  o.wall_s = r.get<double>();
  o.queries = r.get<std::int64_t>();
  o.ranks = r.get<std::int32_t>();
  o.interrupted = r.get<std::uint8_t>() != 0;
  const auto n = r.get<std::uint32_t>();
  for (std::uint32_t i = 0; i < n; ++i) {
    auto name = r.get_string();
    o.metrics[name] = r.get<double>();
  }
  return o;
}

GroupLayout plan_groups(int world_rank, int world_size, int k) {
  if (k < 1) throw ConfigError("sweep.ranks_per_experiment must be >= 1 (got " + std::to_string(k) + ")");
  if (k > world_size)
    throw ConfigError("sweep.ranks_per_experiment = " + std::to_string(k) + " exceeds the " +
                      std::to_string(world_size) + " MPI rank(s) of this job");
  GroupLayout g;
  g.ranks_per_group = k;
  g.groups = world_size / k;
  if (world_rank < g.groups * k) {
    g.group = world_rank / k;
    g.group_rank = world_rank % k;
  }
  return g;
}

GroupComm::GroupComm(MPI_Comm world, const GroupLayout& layout) {
  int world_rank = 0;
  MPI_Comm_rank(world, &world_rank);
  MPI_Comm_split(world, layout.group >= 0 ? layout.group : MPI_UNDEFINED, world_rank, &comm_);
}

GroupComm::~GroupComm() {
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

ScheduleTotals run_dynamic(MPI_Comm world, const GroupLayout& layout, MPI_Comm group,
                           const std::vector<std::size_t>& order,
                           const std::function<Outcome(std::size_t)>& run_task, Observer* observer,
                           const FaultInjection& faults, const std::function<void(std::size_t)>& discard) {
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  if (provided < MPI_THREAD_MULTIPLE)
    throw CommError("the sweep scheduler needs MPI_THREAD_MULTIPLE; this MPI library provides only level " +
                    std::to_string(provided));
  int world_rank = 0;
  MPI_Comm_rank(world, &world_rank);
  MPI_Comm comm;
  MPI_Comm_dup(world, &comm);

  CoordinatorEnd coordinator_end;
  std::optional<std::thread> coordinator;
  std::atomic<bool> abandon{false};
  const JoinOnUnwind join_on_unwind{coordinator, abandon};
  if (world_rank == 0)
    coordinator.emplace([&] { coordinator_end = coordinate(comm, layout.groups, order, observer, abandon); });

  long ran = 0, failed = 0, interrupted = 0, started = 0;
  if (layout.group >= 0) {
    std::int64_t task = layout.leader() ? ask_for_task(comm, -1, layout.group, nullptr) : 0;
    for (;;) {
      MPI_Request request;  // the others wait for the leader's answer without spinning
      MPI_Ibcast(&task, 1, MPI_INT64_T, 0, group, &request);
      wait_politely(&request);
      if (task < 0) break;
      if (world_rank == faults.kill_rank && started == faults.kill_after) std::raise(SIGKILL);
      ++started;
      const auto t0 = std::chrono::steady_clock::now();
      Outcome outcome;
      try {
        outcome = run_task(static_cast<std::size_t>(task));
      } catch (const std::exception& e) {
        outcome = failure_of(&e);
      } catch (...) {
        outcome = failure_of(nullptr);
      }
      // The group agrees: the task failed if it failed on any rank, and the leader reports the
      // lowest failing rank's error and exit code. A result file the leader already wrote for a
      // task that failed elsewhere in its group is discarded.
      int all_ok = outcome.ok ? 1 : 0;
      MPI_Allreduce(MPI_IN_PLACE, &all_ok, 1, MPI_INT, MPI_MIN, group);
      if (!all_ok) {
        const bool wrote = outcome.ok;
        outcome = first_failure(group, layout.group_rank, outcome);
        if (wrote && layout.leader() && discard) discard(static_cast<std::size_t>(task));
      }
      int group_size = 1;
      MPI_Comm_size(group, &group_size);
      outcome.ranks = group_size;
      outcome.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (layout.leader()) {
        ++ran;
        if (outcome.interrupted) ++interrupted;
        else if (!outcome.ok) ++failed;
        task = ask_for_task(comm, task, layout.group, &outcome);
      }
    }
  }

  // Every rank meets here; the coordinator has stopped once every group was told to stop.
  if (coordinator) coordinator->join();
  // [tasks run, failed, interrupted, the bookkeeping error's exit code (rank 0 only)], summed;
  // then the stop signal, the largest over the world.
  long totals[4] = {ran, failed, interrupted, coordinator_end.failed ? std::max(1, coordinator_end.failure.exit_code) : 0};
  MPI_Request request;
  MPI_Iallreduce(MPI_IN_PLACE, totals, 4, MPI_LONG, MPI_SUM, world, &request);
  wait_politely(&request);
  int signal_number = stop_signal();
  MPI_Iallreduce(MPI_IN_PLACE, &signal_number, 1, MPI_INT, MPI_MAX, world, &request);
  wait_politely(&request);
  MPI_Comm_free(&comm);
  if (totals[3] != 0)  // the error's own kind and exit code on every rank; main prints rank 0's line
    throw PreflightError(world_rank == 0 ? "sweep bookkeeping failed: " + coordinator_end.failure.message
                                         : "sweep bookkeeping failed on rank 0 (see its error line)",
                         world_rank == 0 ? coordinator_end.failure.kind : "error", static_cast<int>(totals[3]));
  return ScheduleTotals{totals[0], totals[1], totals[2], signal_number};
}

}  // namespace dne::sweep
