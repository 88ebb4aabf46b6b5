// The checks and preparations before any experiment starts (see preflight.hpp).
#include "dne/run/preflight.hpp"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "dne/config/methods.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/hash.hpp"
#include "dne/core/system_memory.hpp"
#include "dne/data/embedding_file.hpp"
#include "dne/data/manifest.hpp"
#include "dne/experiment/component_options.hpp"
#include "dne/experiment/experiment.hpp"
#include "dne/fm/fm_file.hpp"
#include "dne/fm/vit_encoder.hpp"
#include "dne/run/image_cache_build.hpp"

namespace fs = std::filesystem;

namespace dne::run {
namespace {

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
}  // namespace

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
void prepare_output_dir(const std::string& dir) {
  require_writable_folder(fs::path(dir) / "experiments", "output directory '" + dir + "'");
}
void lock_output_dir(std::optional<sweep::RunDirectoryLock>& lock, const std::string& out_dir, bool wait,
                     const ProcessInfo& process) {
  on_rank0_shared(process, "while locking the output directory", [&] {
    lock.emplace(out_dir, wait, +[](const std::string& holder) {
      std::cout << "# output directory in use by another dne run (" << holder << "); waiting (--wait)" << std::endl;
    });
    for (const auto& path : sweep::remove_stale_temporaries(out_dir))
      std::cout << "# removed " << path << ", a temporary file of an interrupted run\n";
    std::cout << std::flush;
    return std::string();
  });
}

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

}  // namespace dne::run
