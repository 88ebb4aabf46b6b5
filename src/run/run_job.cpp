// `dne run` after its options are parsed (see run_job.hpp).
#include "dne/run/run_job.hpp"

#include <mpi.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "dne/api/inference_client.hpp"
#include "dne/comm/device_choice.hpp"
#include "dne/config/methods.hpp"
#include "dne/core/stop_signal.hpp"
#include "dne/experiment/experiment.hpp"
#include "dne/run/device_agreement.hpp"
#include "dne/run/preflight.hpp"
#include "dne/store/index_file.hpp"
#include "dne/sweep/run_lock.hpp"
#include "dne/sweep/sweep_driver.hpp"

namespace fs = std::filesystem;

namespace dne::run {
namespace {

/// Experiment `c` as the sweep driver sees it: its pending index row (id, method, seed, and the
/// value of every axis plus the keys every index shows), its result file, whether it must hold
/// embeddings, and its estimated cost.
sweep::SweepTask sweep_task(const config::ExperimentConfig& c, const config::RunConfig& run, const std::vector<std::string>& axes) {
  sweep::SweepTask task;
  store::IndexRow& row = task.row;
  row.id = c.id();
  row.method = c.dne.method;
  row.seed = c.sweep.seed;
  std::vector<std::string> keys = axes;
  for (const char* always : {"dne.method", "dne.lambda", "gezo.local_epochs", "sweep.seeds"})
    if (std::find(keys.begin(), keys.end(), always) == keys.end()) keys.push_back(always);
  for (const auto& key : keys) {
    const auto v = config::get_value(c, key);
    if (const auto* d = std::get_if<double>(&v)) row.axes[key] = *d;
    else if (const auto* i = std::get_if<std::int64_t>(&v)) row.axes[key] = static_cast<double>(*i);
    else if (const auto* b = std::get_if<bool>(&v)) row.axes[key] = std::string(*b ? "true" : "false");
    else row.axes[key] = std::get<std::string>(v);
  }
  task.path = experiment::experiment_path(run.output_dir, row.id);
  task.needs_embeddings = run.save_embeddings;
  task.cost = experiment::estimated_cost(c);
  return task;
}
std::string mpi_library_version() {
  char version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  MPI_Get_library_version(version, &length);
  std::string v(version, static_cast<std::size_t>(length));
  return v.substr(0, v.find_first_of(",\n"));
}

/// `dne run --dry-run`: one line per experiment (id, status, estimated cost, axis values).
void print_dry_run(const std::vector<config::ExperimentConfig>& experiments, const config::RunConfig& run,
                   const config::ConfigSource& source) {
  std::cout << "# dry run: " << experiments.size() << " experiment(s); nothing is run or written\n";
  std::cout << std::left << std::setw(18) << "id" << std::setw(10) << "status" << std::setw(12) << "est. cost";
  for (const auto& a : source.axes) std::cout << " " << a;
  std::cout << "\n";
  double total = 0.0;
  for (const auto& c : experiments) {
    const auto task = sweep_task(c, run, source.axes);
    const auto row = sweep::resume_row(task, &std::cout);
    const double cost = task.cost;
    total += row.status == "complete" ? 0.0 : cost;
    std::ostringstream costs;
    costs << std::fixed << std::setprecision(0) << cost;
    std::cout << std::setw(18) << row.id << std::setw(10) << (row.status == "complete" ? "complete" : "to run")
              << std::setw(12) << costs.str();
    for (const auto& a : source.axes) std::cout << " " << a << "=" << config::format_value(config::get_value(c, a));
    std::cout << "\n";
  }
  std::cout << "# estimated cost of what would run: " << std::fixed << std::setprecision(0) << total
            << " image passes through the FM (experiment::estimated_cost)\n" << std::defaultfloat << std::flush;
}

/// World rank 0's opening lines: the run's size, device, first resolved config, axes and groups.
void say_run_start(const std::vector<config::ExperimentConfig>& experiments, const config::RunConfig& run,
                   const config::ConfigSource& source, int threads, const comm::DeviceChoice& device,
                   const sweep::GroupLayout& layout, const ProcessInfo& process) {
  std::cout << "# dne run: " << experiments.size() << " experiment(s), " << process.world_size << " rank(s), " << threads
            << " Torch thread(s) per rank, output " << run.output_dir << "\n";
  std::cout << "# device: " << device.reason() << "; rank-group sums: " << device.backend() << " (comm.backend = "
            << run.backend << ")\n";
  std::cout << "# resolved config (first experiment):\n" << config::resolved_text(experiments.front(), run);
  if (!source.axes.empty()) {
    std::cout << "# sweep axes:";
    for (const auto& a : source.axes) std::cout << " " << a;
    std::cout << "\n";
  }
  if (layout.ranks_per_group > 1 || process.world_size % layout.ranks_per_group != 0)
    std::cout << "# " << layout.groups << " rank group(s) of " << layout.ranks_per_group << "; "
              << process.world_size % layout.ranks_per_group << " leftover rank(s) idle\n";
  std::cout << std::flush;
}

/// How the sweep driver runs this request: the groups, the output, progress lines, faults.
sweep::SweepSetup sweep_setup(const RunRequest& request, const sweep::GroupLayout& layout, MPI_Comm group,
                              const std::string& out_dir) {
  sweep::SweepSetup setup;
  setup.layout = layout;
  setup.group = group;
  setup.out_dir = out_dir;
  setup.progress = request.quiet ? nullptr : &std::cout;
  setup.faults = request.faults;
  return setup;
}

/// index.h5's description of the sweep (world rank 0): its origin and axes, the methods that
/// read each key of the rows, and the method table, so analysis/ needs no copy of either.
void describe_sweep(store::IndexHeader& header, const config::ConfigSource& source, const sweep::SweepTask& first) {
  header.config_origin = source.origin;
  header.axes = source.axes;
  for (const auto& [key, value] : first.row.axes) header.key_methods[key] = config::methods_reading(key);
  for (const auto& m : config::method_table()) {
    header.method_names.push_back(m.name);
    header.method_kinds.push_back(config::kind_name(m.kind));
    header.method_trace_x.push_back(m.trace_x);
  }
}

}  // namespace

int run_job(const RunRequest& request, const ProcessInfo& process) {
  // SIGTERM / SIGINT from here on stop the run cleanly (docs/reliability.md): no experiment is
  // handed out any more, those in flight are abandoned at their next cancellation point and stay
  // pending, index.h5 is finished, and every rank exits with 128 + signal. A second signal exits
  // at once.
  const StopOnSignal stop_on_signal;
  const bool quiet = request.quiet;
  const auto& source = request.source;
  const auto run = config::read_run_config(source);  // the run-wide keys, read once
  auto experiments = config::expand(source);
  // Keys of another method, data source or FM kind collapse to their defaults (so a kind can be
  // switched by one --set, or be an axis); the source and kind keys that no experiment reads are
  // said once (method keys collapse silently, as they always have).
  if (process.rank == 0 && !quiet) {
    for (const auto& key : config::unread_keys(source, experiments))
      std::cout << "# ignored: " << key << ": no experiment reads it\n";
    std::cout << std::flush;
    say_deprecated_keys(source, process);  // a renamed key's former name: read as the new one
  }
  // Every argument is checked before anything is written: a malformed api.url (here), and rank
  // groups larger than the job (--inject-kill was parsed by the command line).
  for (const auto& c : experiments)
    if (c.fm.kind == "remote") api::parse_endpoint(c.api.url);
  require_memory(experiments, process);
  // The run's device and communicator: chosen here, in one place, alike on every rank.
  const auto device = agreed_device_choice(run, experiments, process);
  // Rank groups of k consecutive ranks; world % k leftover ranks take no experiment.
  const auto layout = sweep::plan_groups(process.rank, process.world_size,
                                         static_cast<int>(run.ranks_per_experiment));
  const std::string& out_dir = run.output_dir;
  const bool dry_run = request.dry_run;
  if (!dry_run) prepare_output_dir(out_dir);  // every rank checks: the error is symmetric
  std::optional<sweep::RunDirectoryLock> lock;  // world rank 0's, for the whole run
  if (!dry_run) lock_output_dir(lock, out_dir, request.wait, process);
  attach_fm_hashes(experiments);
  prepare_data(experiments, out_dir, process, !dry_run, quiet);
  if (dry_run) {
    if (process.rank == 0) print_dry_run(experiments, run, source);
    return 0;
  }

  const int threads = choose_threads(run.threads, process);
  torch::set_num_threads(threads);
  if (process.rank == 0 && !quiet) say_run_start(experiments, run, source, threads, device, layout, process);
  const sweep::GroupComm group_comm(MPI_COMM_WORLD, layout);
  std::unique_ptr<comm::Communicator> group;
  if (group_comm.get() != MPI_COMM_NULL) group = device.communicator(group_comm.get(), run.comm_timeout_s);

  // The sweep itself (resume, order, index.h5, schedule, the end): sweep/sweep_driver.hpp.
  auto setup = sweep_setup(request, layout, group_comm.get(), out_dir);
  std::vector<sweep::SweepTask> tasks;
  if (process.rank == 0) {
    for (const auto& c : experiments) tasks.push_back(sweep_task(c, run, source.axes));
    describe_sweep(setup.header, source, tasks.front());
  }

  experiment::ExperimentContext ctx;
  ctx.run = run;
  ctx.world_size = process.world_size;
  ctx.group = group.get();
  ctx.mpi_library = mpi_library_version();
  ctx.log = quiet || !layout.leader() ? nullptr : &std::cout;
  ctx.device = device;
  const auto run_one = [&](std::size_t task) {
    const auto summary = experiment::run_experiment(experiments[task], ctx);
    sweep::Outcome o;
    o.ok = true;
    o.editor_status = summary.status;
    o.queries = summary.queries;
    o.metrics = summary.metrics;
    for (const auto& [name, value] : summary.control_metrics) o.metrics["control_" + name] = value;
    return o;
  };
  const auto discard = [&](std::size_t task) {  // the group failed after the leader wrote the file
    std::error_code ec;
    fs::remove(experiment::experiment_path(out_dir, experiments[task].id()), ec);
  };
  const int exit_code = sweep::run_sweep(setup, tasks, run_one, discard);
  group.reset();
  return exit_code;
}

}  // namespace dne::run
