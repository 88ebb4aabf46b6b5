// `dne run`, `dne phantom`, `dne pretrain` and `dne inspect` (see commands.hpp): each parses its
// options and hands the work to the module that does it (`run` to run/run_job.hpp).
#include <mpi.h>
#include <torch/torch.h>

#include <boost/program_options.hpp>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "dne/cli/commands.hpp"
#include "dne/cli/options.hpp"
#include "dne/comm/mpi_communicator.hpp"
#include "dne/config/config.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/stop_signal.hpp"
#include "dne/data/manifest.hpp"
#include "dne/data/phantom.hpp"
#include "dne/experiment/component_options.hpp"
#include "dne/experiment/experiment.hpp"
#include "dne/pretrain/trainer.hpp"
#include "dne/run/preflight.hpp"
#include "dne/run/run_job.hpp"
#include "dne/store/result_file.hpp"
#include "dne/sweep/ledger.hpp"
#include "dne/sweep/run_lock.hpp"
#include "dne/sweep/scheduler.hpp"

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
}  // namespace

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
  run::RunRequest request;
  request.source = resolve_source(vm);
  request.dry_run = vm.count("dry-run") > 0;
  request.wait = vm.count("wait") > 0;
  request.quiet = vm.count("quiet") > 0;
  request.faults = fault_injection(vm);
  return run::run_job(request, process);
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
  const auto source = config_and_overrides(vm);
  const auto c = single_config(source, "dne phantom");
  run::say_deprecated_keys(source, process);
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
  if (!vm.count("quiet")) run::say_deprecated_keys(source, process);
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
    run::require_writable_folder(parent.empty() ? fs::path(".") : parent, "--out '" + out + "': its folder");
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
  run::on_rank0_shared(process, "while locking --out", [&] {
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
