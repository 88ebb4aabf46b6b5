// What `dne run` checks and prepares before any experiment starts, so that bad input ends the
// job with one line and no half-written output: the output directory (writable, locked for the
// run, dead writers' temporary files removed), the memory the largest experiment needs, every
// FM file the experiments name (read, checked against their architecture, hashed into their
// ids), and the data (manifests and embeddings files read and checked once by world rank 0,
// hashed into the ids, the validation split checked against the config, the image caches
// decoded by every rank: image_cache_build.hpp). Every function is collective over
// MPI_COMM_WORLD unless it says otherwise; an error reaches every rank as the same
// PreflightError (one line, the same exit code everywhere).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dne/config/config.hpp"
#include "dne/run/process.hpp"
#include "dne/sweep/run_lock.hpp"

namespace dne::run {

/// Create `folder` and prove it is writable; StoreError (exit 2) starting with `what` otherwise.
/// Local: every rank that calls it checks for itself.
void require_writable_folder(const std::filesystem::path& folder, const std::string& what);

/// Create DIR/experiments and prove it is writable; StoreError (exit 2) naming DIR otherwise.
/// Local (every rank checks: the error is symmetric).
void prepare_output_dir(const std::string& dir);

/// One run per directory: world rank 0 locks `out_dir` into `lock` for the whole run (the kernel
/// releases it when the process ends; `wait`: queue behind the holder instead of failing), then
/// removes the temporary files of earlier runs that died between a write and its rename. The
/// outcome reaches every rank: one line, the same exit everywhere.
void lock_output_dir(std::optional<sweep::RunDirectoryLock>& lock, const std::string& out_dir, bool wait,
                     const ProcessInfo& process);

/// The largest experiment must fit in this node's available memory shared by its ranks
/// (experiment::estimated_memory_bytes, a lower bound): one line and exit 2 before any
/// experiment starts, instead of std::bad_alloc in the middle of the sweep. Every rank decides
/// alike: the memory is the job's smallest per rank.
void require_memory(const std::vector<config::ExperimentConfig>& experiments, const ProcessInfo& process);

/// Every FM file the sweep names is read and checked against its experiments' architecture once,
/// up front, and its content hash enters their ids (a changed file is never resumed): fm.weights
/// by its architecture and weights, fm.torchscript by its bytes. Every rank does this
/// identically (no collective), so a bad file ends the job with one line (PreflightError).
void attach_fm_hashes(std::vector<config::ExperimentConfig>& experiments);

/// Manifests and embeddings files are checked once, on world rank 0, before any experiment
/// starts: a manifest's header, every row and every image file (read_manifest), an embeddings
/// file's layout and values, the validation split against the config, and the content hash of
/// what is read, which enters the experiments' ids (a changed input is a new experiment). The
/// memory check then sees the manifests' row counts (require_memory). With `decode`, every rank
/// then decodes its share of each manifest's images into the run's image cache
/// (build_image_caches).
void prepare_data(std::vector<config::ExperimentConfig>& experiments, const std::string& out_dir, const ProcessInfo& process,
                  bool decode, bool quiet);

}  // namespace dne::run
