// `dne run`, `dne phantom` and `dne inspect` (see commands.hpp).
//
// `run` resolves the config (file + --set + --out), checks every argument, chooses the device
// and the communicator (config/run_settings.hpp), locks and checks the output directory and the
// data, then hands the experiments to the sweep driver (sweep/sweep_driver.hpp: resume, order,
// DIR/index.h5, the dynamic schedule over rank groups, the exit code) with
// experiment::run_experiment as the callback. An experiment whose result file already exists
// with the same id is not run again, so re-running the same command resumes; an experiment that
// fails is recorded in the index and the sweep goes on; the exit code is then the largest
// failure's (2 when every failure was bad input, 1 otherwise), or 128 + signal after a stop.
#include <mpi.h>
#include <unistd.h>
#include <torch/torch.h>

#include <boost/program_options.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "dne/api/inference_client.hpp"
#include "dne/cli/commands.hpp"
#include "dne/cli/image_cache_build.hpp"
#include "dne/cli/options.hpp"
#include "dne/cli/run_device.hpp"
#include "dne/comm/mpi_communicator.hpp"
#include "dne/comm/nccl_communicator.hpp"
#include "dne/config/config.hpp"
#include "dne/config/methods.hpp"
#include "dne/config/run_settings.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/hash.hpp"
#include "dne/core/stop_signal.hpp"
#include "dne/core/system_memory.hpp"
#include "dne/core/text.hpp"
#include "dne/data/image_cache.hpp"
#include "dne/data/embedding_file.hpp"
#include "dne/data/manifest.hpp"
#include "dne/data/phantom.hpp"
#include "dne/experiment/experiment.hpp"
#include "dne/fm/fm_file.hpp"
#include "dne/pretrain/trainer.hpp"
#include "dne/store/index_file.hpp"
#include "dne/store/result_file.hpp"
#include "dne/sweep/ledger.hpp"
#include "dne/sweep/run_lock.hpp"
#include "dne/sweep/scheduler.hpp"
#include "dne/sweep/sweep_driver.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace dne::cli {
namespace {

/// Config file (optional) + overrides + --out (the run directory), in that order.
config::ConfigSource resolve_source(const po::variables_map& vm) {
  auto source = config_and_overrides(vm);
  if (vm.count("out")) config::set_value(source, "output.dir", vm["out"].as<std::string>());
  return source;
}

/// Create `folder` and prove it is writable; StoreError (exit 2) starting with `what` otherwise.
void require_writable_folder(const fs::path& folder, const std::string& what) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw StoreError(what + ": cannot create: " + ec.message());
  const auto probe = folder / (".write-test." + std::to_string(::getpid()));
  {
    std::ofstream out(probe);
    if (!out) throw StoreError(what + " is not writable");
  }
  fs::remove(probe, ec);
}

/// Create DIR/experiments and prove it is writable; StoreError (exit 2) naming DIR otherwise.
void prepare_output_dir(const std::string& dir) {
  require_writable_folder(fs::path(dir) / "experiments", "output directory '" + dir + "'");
}

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


/// Whether `c` fits in `have` bytes (experiment::estimated_memory_bytes, a lower bound);
/// ResourceError otherwise, naming the data, the need and what there is (`ranks_here` share it).
void require_fits(const config::ExperimentConfig& c, double have, int ranks_here) {
  const double need = experiment::estimated_memory_bytes(c);
  if (need <= have) return;
  std::ostringstream why;
  why << std::fixed << std::setprecision(1);
  if (c.data.source == "manifest")
    why << "data.manifest " << c.data.manifest << ": " << c.data_rows_train << " training and " << c.data_rows_test
        << " test images";
  else
    why << "data.n_train = " << c.data.n_train << " and data.n_test = " << c.data.n_test << " images";
  why << " of " << c.data.image_size << " x " << c.data.image_size << " need at least " << need / 1e9
      << " GB per rank, and this node has " << have / 1e9 << " GB available per rank (" << ranks_here
      << " rank(s) here): use fewer or smaller images";
  throw ResourceError(why.str());
}

/// The largest experiment must fit in this node's available memory shared by its ranks: one
/// line and exit 2 before any experiment starts, instead of std::bad_alloc in the middle of the
/// sweep. Called once before anything is written (the phantom's size is in its config) and once
/// after the data check (a manifest's rows are counted then). Every rank decides alike: the
/// estimate comes from the config, and the memory is the job's smallest per rank (collective
/// over the world).
void require_memory(const std::vector<config::ExperimentConfig>& experiments, const ProcessInfo& process) {
  const config::ExperimentConfig* largest = nullptr;
  double need = 0.0;
  for (const auto& c : experiments)
    if (const double bytes = experiment::estimated_memory_bytes(c); bytes > need) need = bytes, largest = &c;
  double have = available_memory_bytes() / std::max(1, process.local_size);
  MPI_Allreduce(MPI_IN_PLACE, &have, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  if (largest == nullptr) return;
  try {
    require_fits(*largest, have, process.local_size);
  } catch (const ResourceError& e) {
    throw PreflightError(e);
  }
}

/// --inject-kill RANK:N (testing): world rank RANK dies by SIGKILL before its (N+1)-th experiment.
sweep::FaultInjection fault_injection(const po::variables_map& vm) {
  sweep::FaultInjection f;
  if (!vm.count("inject-kill")) return f;
  const auto spec = vm["inject-kill"].as<std::string>();
  const auto colon = spec.find(':');
  try {
    if (colon == std::string::npos) throw std::invalid_argument(spec);
    f.kill_rank = std::stoi(spec.substr(0, colon));
    f.kill_after = std::stoi(spec.substr(colon + 1));
  } catch (const std::exception&) {
    throw ConfigError("--inject-kill '" + spec + "': expected RANK:N, e.g. 1:2");
  }
  return f;
}

/// Every FM file the sweep names is read and checked against its experiments' architecture once,
/// up front, and its content hash enters their ids (a changed file is never resumed): fm.weights
/// by its architecture and weights, fm.torchscript by its bytes. Every rank does this
/// identically, so a bad file ends the job with one line (PreflightError).
void attach_fm_hashes(std::vector<config::ExperimentConfig>& experiments) {
  std::map<std::string, std::string> verified;  // path + architecture -> hash
  try {
    for (auto& c : experiments) {
      if (c.fm.kind == "torchscript") {
        auto it = verified.find(c.fm.torchscript);
        if (it == verified.end()) {
          std::error_code ec;
          if (!fs::is_regular_file(c.fm.torchscript, ec))
            throw ModelError("fm.torchscript: '" + c.fm.torchscript + "' is not a file");
          it = verified.emplace(c.fm.torchscript, file_content_hash(c.fm.torchscript)).first;
        }
        c.fm_hash = it->second;
      }
      if (c.fm.kind != "vit" || c.fm.weights.empty()) continue;
      const std::string key = c.fm.weights + "\n" + fm::ViTArchitecture::from_config(c.fm, c.data.image_size).canonical_text();
      auto it = verified.find(key);
      if (it == verified.end()) it = verified.emplace(key, fm::verify_weights(c.fm, c.data.image_size)).first;
      c.fm_hash = it->second;
    }
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    throw PreflightError(e);
  }
}

/// Whether an experiment needs a validation split (something is chosen on it).
bool needs_validation(const config::ExperimentConfig& c) {
  return !c.probes.l2_choices.empty() || (c.dne.keep == "best_val" && config::learns_noise(c.dne.method));
}

/// The validation checks of data with (`has_val`) or without its own validation rows.
void check_validation_split(const config::ExperimentConfig& c, bool has_val, const std::string& file,
                            const std::string& val_rows) {
  if (has_val && c.data.val_fraction > 0.0)
    throw ConfigError(file + " has " + val_rows + ": data.val_fraction must be 0 (it is " +
                      config::format_value(c.data.val_fraction) + ")");
  if (needs_validation(c) && !has_val && c.data.val_fraction <= 0.0)
    throw ConfigError(std::string(c.probes.l2_choices.empty() ? "dne.keep = \"best_val\"" : "probes.l2_choices") +
                      " needs a validation split: give " + file + " " + val_rows + " or set data.val_fraction > 0");
}

/// An embeddings file read and checked whole by world rank 0: its line for prepare_data (data
/// hash, train (+ val) rows, test rows) and whether it has a val/ split.
struct CheckedEmbeddings {
  std::string line;
  bool has_val = false;
};

CheckedEmbeddings check_embeddings(const config::ExperimentConfig& c) {
  const auto ds = data::read_embeddings(c.data.embeddings, c.data.embeddings_group);
  return {experiment::embeddings_hash(c) + " " + std::to_string(ds.train.size() + ds.val.size()) + " " +
              std::to_string(ds.test.size()) + "\n",
          ds.val.size() > 0};
}

/// World rank 0's share of prepare_data: every distinct manifest selection read, checked and
/// hashed once; every embeddings file read and hashed. Returns one line per experiment: its data
/// hash and its train (+ val) and test rows, empty for the phantom.
std::string check_data(const std::vector<config::ExperimentConfig>& experiments) {
  struct Checked {
    data::Manifest manifest;
    std::string hash;
  };
  std::map<std::string, Checked> checked;  // manifest + selection -> rows and hash
  std::string lines;
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::map<std::string, CheckedEmbeddings> embedding_files;  // file + group -> what its check found
  for (const auto& c : experiments) {
    if (c.data.source == "embeddings") {
      const auto key = c.data.embeddings + "\n" + c.data.embeddings_group;
      if (embedding_files.count(key) == 0) embedding_files[key] = check_embeddings(c);
      check_validation_split(c, embedding_files[key].has_val, c.data.embeddings, "a val/ split");
      lines += embedding_files[key].line;
      continue;
    }
    if (c.data.source != "manifest") {
      lines += "\n";
      continue;
    }
    const auto options = experiment::manifest_options(c);
    const std::string key = c.data.manifest + "\n" + options.sa_column + "\n" + std::to_string(options.limit_train) +
                            "\n" + std::to_string(options.limit_test) + "\n" + c.data.image_hash;
    auto it = checked.find(key);
    if (it == checked.end()) {
      Checked one;
      one.manifest = data::read_manifest(c.data.manifest, options);
      one.hash = experiment::data_hash(c, one.manifest, threads);
      it = checked.emplace(key, std::move(one)).first;
    }
    const auto& rows = it->second.manifest.rows;
    const bool has_val = std::any_of(rows.begin(), rows.end(), [](const data::ManifestRow& r) { return r.split == data::Split::kVal; });
    check_validation_split(c, has_val, c.data.manifest, "rows with split 'val'");
    const auto test_rows = std::count_if(rows.begin(), rows.end(), [](const data::ManifestRow& r) { return r.split == data::Split::kTest; });
    lines += it->second.hash + " " + std::to_string(static_cast<std::int64_t>(rows.size()) - test_rows) + " " +
             std::to_string(test_rows) + "\n";
  }
  return lines;
}

/// Manifests and embeddings files are checked once, on world rank 0, before any experiment
/// starts: a manifest's header, every row and every image file (read_manifest), an embeddings
/// file's layout and values, the validation split against the config, and the content hash of
/// what is read, which enters the experiments' ids (a changed input is a new experiment). The
/// memory check then sees the manifests' row counts (require_memory). With `decode`, every rank
/// then decodes its share of each manifest's images into the run's image
/// cache (build_image_caches). Bad data ends the job on every rank with one line and no
/// experiment file (PreflightError).
void prepare_data(std::vector<config::ExperimentConfig>& experiments, const std::string& out_dir, const ProcessInfo& process,
                  bool decode, bool quiet) {
  const bool any = std::any_of(experiments.begin(), experiments.end(),
                               [](const config::ExperimentConfig& c) { return c.data.source != "phantom"; });
  if (!any) return;
  std::istringstream in(on_rank0_shared(process, "while preparing the data", [&] { return check_data(experiments); }));
  std::string line;
  for (auto& c : experiments) {  // "<hash> <train rows> <test rows>", or empty for the phantom
    std::getline(in, line);
    std::istringstream fields(line);
    fields >> c.data_hash >> c.data_rows_train >> c.data_rows_test;
  }
  require_memory(experiments, process);  // now with the manifests' rows, before anything is decoded
  if (decode) build_image_caches(experiments, out_dir, process, quiet);
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

}  // namespace

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

int command_run(const std::vector<std::string>& args, const ProcessInfo& process) {
  po::options_description options("dne run: run every experiment a config defines\n"
                                  "usage: dne run --config FILE [--set key=value ...] [--out DIR]");
  options.add_options()("help,h", "show this help")("help-config", "list every config key")(
      "config,c", po::value<std::string>(), "TOML config file")(
      "set,s", po::value<std::vector<std::string>>()->composing(),
      "override a key: --set dne.lambda=0.01 (a list [a,b] makes a sweep axis)")(
      "out,o", po::value<std::string>(), "run directory (overrides output.dir)")(
      "quiet,q", "no progress lines: print only errors and the final line")(
      "dry-run", "check the config, FM files and data, print the experiments it expands to (id, status, "
                 "estimated cost, axis values) and exit")(
      "wait", "if another dne run holds the output directory, wait for it to finish (default: exit 2 naming it)")(
      "inject-kill", po::value<std::string>(),
      "testing: RANK:N makes world rank RANK kill itself (SIGKILL) before its (N+1)-th experiment");
  const auto vm = parse_args(args, options);
  if (vm.count("help")) {
    if (process.rank == 0) std::cout << options << "\n";
    return 0;
  }
  if (vm.count("help-config")) {
    if (process.rank == 0) std::cout << "config keys:\n" << config::describe_keys();
    return 0;
  }
  if (!vm.count("config")) throw ConfigError("dne run: --config FILE is required (see dne run --help)");
  // SIGTERM / SIGINT from here on stop the run cleanly (docs/reliability.md): no experiment is
  // handed out any more, those in flight are abandoned at their next cancellation point and stay
  // pending, index.h5 is finished, and every rank exits with 128 + signal. A second signal exits
  // at once.
  const StopOnSignal stop_on_signal;
  const bool quiet = vm.count("quiet") > 0;
  const auto source = resolve_source(vm);
  const auto run = config::read_run_config(source);  // the run-wide keys, read once
  auto experiments = config::expand(source);
  // Keys of another method, data source or FM kind collapse to their defaults (so a kind can be
  // switched by one --set, or be an axis); the source and kind keys that no experiment reads are
  // said once (method keys collapse silently, as they always have).
  if (process.rank == 0 && !quiet) {
    for (const auto& key : config::unread_keys(source, experiments))
      std::cout << "# ignored: " << key << ": no experiment reads it\n";
    std::cout << std::flush;
  }
  // Every argument is checked before anything is written: a malformed api.url, --inject-kill, and
  // rank groups larger than the job.
  for (const auto& c : experiments)
    if (c.fm.kind == "remote") api::parse_endpoint(c.api.url);
  const auto faults = fault_injection(vm);
  require_memory(experiments, process);
  // The run's settings, device and communicator: chosen here, in one place, alike on every rank.
  const auto settings = agreed_run_settings(run, experiments, process);
  // Rank groups of k consecutive ranks; world % k leftover ranks take no experiment.
  const auto layout = sweep::plan_groups(process.rank, process.world_size,
                                         static_cast<int>(run.ranks_per_experiment));
  const std::string& out_dir = run.output_dir;
  const bool dry_run = vm.count("dry-run") > 0;
  if (!dry_run) prepare_output_dir(out_dir);  // every rank checks: the error is symmetric
  // One run per directory: world rank 0 locks it for the whole run (the kernel releases the lock
  // when the process ends), then removes the temporary files of earlier runs that died between a
  // write and its rename. The outcome reaches every rank: one line, the same exit everywhere.
  std::optional<sweep::RunDirectoryLock> lock;
  if (!dry_run)
    on_rank0_shared(process, "while locking the output directory", [&] {
      lock.emplace(out_dir, vm.count("wait") > 0, +[](const std::string& holder) {
        std::cout << "# output directory in use by another dne run (" << holder << "); waiting (--wait)" << std::endl;
      });
      for (const auto& path : sweep::remove_stale_temporaries(out_dir))
        std::cout << "# removed " << path << ", a temporary file of an interrupted run\n";
      std::cout << std::flush;
      return std::string();
    });
  attach_fm_hashes(experiments);
  prepare_data(experiments, out_dir, process, !dry_run, quiet);
  if (dry_run) {
    if (process.rank == 0) print_dry_run(experiments, run, source);
    return 0;
  }

  const int threads = choose_threads(run.threads, process);
  torch::set_num_threads(threads);
  if (process.rank == 0 && !quiet) {
    std::cout << "# dne run: " << experiments.size() << " experiment(s), " << process.world_size
              << " rank(s), " << threads << " Torch thread(s) per rank, output " << out_dir << "\n";
    std::cout << "# device: " << settings.reason << "; rank-group sums: " << settings.backend << " (comm.backend = "
              << run.backend << ")\n";
    std::cout << "# resolved config (first experiment):\n" << config::resolved_text(experiments.front(), run);
    if (!source.axes.empty()) {
      std::cout << "# sweep axes:";
      for (const auto& a : source.axes) std::cout << " " << a;
      std::cout << "\n";
    }
    std::cout << std::flush;
  }

  if (process.rank == 0 && !quiet && (layout.ranks_per_group > 1 || process.world_size % layout.ranks_per_group != 0))
    std::cout << "# " << layout.groups << " rank group(s) of " << layout.ranks_per_group << "; "
              << process.world_size % layout.ranks_per_group << " leftover rank(s) idle\n" << std::flush;
  const sweep::GroupComm group_comm(MPI_COMM_WORLD, layout);
  std::unique_ptr<comm::Communicator> group;
  if (group_comm.get() != MPI_COMM_NULL)
    group = settings.backend == "nccl" ? comm::make_nccl_communicator(group_comm.get(), run.comm_timeout_s, settings.cuda_index)
                                       : comm::make_mpi_communicator(group_comm.get());

  // The sweep itself (resume, order, index.h5, schedule, the end): sweep/sweep_driver.hpp.
  sweep::SweepSetup setup;
  setup.layout = layout;
  setup.group = group_comm.get();
  setup.out_dir = out_dir;
  setup.progress = quiet ? nullptr : &std::cout;
  setup.faults = faults;
  std::vector<sweep::SweepTask> tasks;
  if (process.rank == 0) {
    for (const auto& c : experiments) tasks.push_back(sweep_task(c, run, source.axes));
    setup.header.config_origin = source.origin;
    setup.header.axes = source.axes;
    for (const auto& [key, value] : tasks.front().row.axes) setup.header.key_methods[key] = config::methods_reading(key);
    for (const auto& m : config::method_table()) {
      setup.header.method_names.push_back(m.name);
      setup.header.method_kinds.push_back(config::kind_name(m.kind));
      setup.header.method_trace_x.push_back(m.trace_x);
    }
  }

  experiment::RunContext ctx;
  ctx.run = run;
  ctx.world_size = process.world_size;
  ctx.group = group.get();
  ctx.mpi_library = mpi_library_version();
  ctx.log = quiet || !layout.leader() ? nullptr : &std::cout;
  ctx.device = settings.device;
  ctx.cuda_index = settings.cuda_index;
  ctx.libtorch_cuda = libtorch_cuda_version();
  ctx.device_description = device_description(settings);
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


int command_phantom(const std::vector<std::string>& args, const ProcessInfo& process) {
  po::options_description options("dne phantom: write the synthetic chest X-ray data set\n"
                                  "usage: dne phantom --out DIR [--config FILE] [--set data.key=value ...]");
  options.add_options()("help,h", "show this help")("out,o", po::value<std::string>(), "output directory")(
      "config,c", po::value<std::string>(), "TOML config (its [data] and sweep.seeds are used)")(
      "set,s", po::value<std::vector<std::string>>()->composing(), "override a key, e.g. data.n_train=200");
  const auto vm = parse_args(args, options);
  if (vm.count("help")) {
    if (process.rank == 0) std::cout << options << "\n";
    return 0;
  }
  if (!vm.count("out")) throw ConfigError("dne phantom: --out DIR is required");
  const auto c = single_config(config_and_overrides(vm), "dne phantom");
  if (process.rank != 0) return 0;
  const data::PhantomOptions p = experiment::phantom_options(c);
  const std::string dir = vm["out"].as<std::string>();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw StoreError("output directory '" + dir + "': cannot create: " + ec.message());
  data::write_phantom(data::make_phantom(p), dir);
  std::cout << "dne phantom: wrote " << p.n_train << " train and " << p.n_test << " test images, "
            << dir << "/manifest.csv and " << dir << "/montage.png" << std::endl;
  return 0;
}

int command_pretrain(const std::vector<std::string>& args, const ProcessInfo& process) {
  po::options_description options(
      "dne pretrain: masked-autoencoder pretraining of the built-in ViT on the configured data's\n"
      "training images (labels and sensitive attributes are not read); data-parallel under mpirun.\n"
      "A rerun resumes from the last checkpoint (OUT.ckpt); an up-to-date OUT is kept as it is.\n"
      "usage: dne pretrain --config FILE [--set key=value ...] --out FM_FILE");
  options.add_options()("help,h", "show this help")("config,c", po::value<std::string>(), "TOML config ([data], [fm], [pretrain])")(
      "set,s", po::value<std::vector<std::string>>()->composing(), "override a key, e.g. pretrain.steps=500")(
      "out,o", po::value<std::string>(), "the FM file to write (docs/fm-file.md)")(
      "quiet,q", "no progress lines")(
      "inject-kill-after", po::value<long>(), "testing: rank 0 kills itself (SIGKILL) right after the checkpoint of step N");
  const auto vm = parse_args(args, options);
  if (vm.count("help")) {
    if (process.rank == 0) std::cout << options << "\n";
    return 0;
  }
  if (!vm.count("out")) throw ConfigError("dne pretrain: --out FM_FILE is required");
  const auto source = config::pretraining_source(config_and_overrides(vm));  // only the keys it reads
  auto c = single_config(source, "dne pretrain");
  const auto run = config::read_run_config(source);
  if (c.fm.kind != "vit") throw ConfigError("dne pretrain trains the built-in ViT: set fm.kind = \"vit\" (it is \"" + c.fm.kind + "\")");
  if (!c.fm.weights.empty())
    throw ConfigError("dne pretrain starts from random weights: leave fm.weights empty (it is \"" + c.fm.weights + "\")");
  const std::string out = vm["out"].as<std::string>();
  const bool quiet = vm.count("quiet") > 0;
  // SIGTERM / SIGINT stop pretraining at the next step on every rank, with a checkpoint of that
  // step, one line and exit 128 + signal (pretrain/trainer.hpp); a second signal exits at once.
  const StopOnSignal stop_on_signal;
  // One Torch thread per rank unless run.threads says otherwise: the bits of a micro-batch's
  // gradient depend on the thread count (per-thread partial sums), and must not depend on how
  // many ranks share the node.
  const int threads = run.threads > 0 ? static_cast<int>(run.threads) : 1;
  torch::set_num_threads(threads);

  // Everything before the first collective fails alike on every rank: one line, clean exit.
  torch::Tensor images;
  std::ostringstream data;
  try {
    const auto parent = fs::path(out).parent_path();
    require_writable_folder(parent.empty() ? fs::path(".") : parent, "--out '" + out + "': its folder");
    if (fs::is_directory(out)) throw StoreError("--out '" + out + "' is a directory; give the FM file to write");
    if (fs::exists(out)) {
      bool fm_file = false;
      try {
        fm_file = store::H5Reader(out).string_attribute("/", "format") == "dne-fm";
      } catch (const StoreError&) {
      }
      if (!fm_file) throw StoreError("--out '" + out + "' exists and is not an FM file; refusing to replace it");
    }
    if (c.data.source == "embeddings")
      throw ConfigError("dne pretrain trains on images, and data.source = \"embeddings\" has none: use the phantom or a manifest");
    if (c.data.source == "manifest") {  // the manifest's content enters the pretraining hash: a changed one retrains
      c.data_hash = experiment::data_hash(c, data::read_manifest(c.data.manifest, experiment::manifest_options(c)), threads);
    }
    const auto dataset = experiment::load_dataset(c, run.output_dir);  // only the training images are used below
    data::validate(dataset.train, "train split");
    images = experiment::to_tensor(dataset.train);
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    throw PreflightError(e);
  }
  if (c.data.source == "phantom")
    data << "phantom (seed " << c.sweep.seed << ", " << images.size(0) << " training images, " << c.data.image_size << "x"
         << c.data.image_size << ", data.bias " << c.data.bias << "); labels and sensitive attributes not read";
  else
    data << "manifest " << c.data.manifest << " (" << images.size(0) << " training images, " << c.data.image_size << "x"
         << c.data.image_size << "); labels and sensitive attributes not read";
  // One writer per output file: world rank 0 locks "<out>.lock" until the process ends.
  std::optional<sweep::OutputFileLock> lock;
  on_rank0_shared(process, "while locking --out", [&] {
    lock.emplace(out);
    return std::string();
  });
  auto group = comm::make_mpi_communicator(MPI_COMM_WORLD);
  if (process.rank == 0 && !quiet)
    std::cout << "# dne pretrain: " << process.world_size << " rank(s), " << threads << " Torch thread(s) per rank, "
              << data.str() << "\n# pretraining config:\n" << c.pretrain_text() << std::flush;
  pretrain::PretrainIo io;
  io.out_path = out;
  io.data_description = data.str();
  io.log = quiet || process.rank != 0 ? nullptr : &std::cout;
  if (vm.count("inject-kill-after")) io.kill_after_step = vm["inject-kill-after"].as<long>();
  pretrain::PretrainSummary summary;
  try {
    summary = pretrain::run_pretraining(c, images, *group, io);
  } catch (const Interrupted& e) {  // met by every rank at the same step: one line, the same exit everywhere
    if (process.rank == 0) std::cerr << "dne pretrain: " << e.what() << std::endl;
    return e.exit_code();
  }
  if (process.rank == 0) {
    if (summary.up_to_date)
      std::cout << "dne pretrain: " << out << " is up to date (same pretraining config, " << summary.steps
                << " steps, final loss " << summary.final_loss << "); nothing to do" << std::endl;
    else
      std::cout << "dne pretrain: wrote " << out << ": " << summary.steps << " steps"
                << (summary.resumed_from > 0 ? " (resumed at " + std::to_string(summary.resumed_from) + ")" : "")
                << ", final loss " << summary.final_loss << ", " << std::fixed << std::setprecision(0)
                << summary.images_per_s << " images/s, wall " << sweep::format_duration(summary.wall_s) << std::endl;
  }
  return 0;
}

int command_inspect(const std::vector<std::string>& args, const ProcessInfo& process) {
  po::options_description options("dne inspect: print what a result file holds\nusage: dne inspect FILE.h5");
  options.add_options()("help,h", "show this help")("file", po::value<std::string>(), "result file");
  po::positional_options_description positional;
  positional.add("file", 1);
  const auto vm = parse_args(args, options, &positional);
  if (vm.count("help")) {
    if (process.rank == 0) std::cout << options << "\n";
    return 0;
  }
  if (!vm.count("file")) throw ConfigError("dne inspect: a FILE.h5 argument is required");
  if (process.rank == 0) std::cout << store::inspect(vm["file"].as<std::string>());
  return 0;
}

}  // namespace dne::cli
