// One experiment end to end: data -> FM -> clean embeddings -> SA probe g -> the method ->
// disease probe and attack probes -> metrics, and the same for the method's control ->
// DIR/experiments/<id>.h5 (written atomically). The method is a noise editor (the debiased
// embeddings are the FM's of x + eps; the control is a norm-matched random noise) or the
// adversarial VAE (the debiased embeddings are its latent means; the control is the same VAE
// without the adversary); with data.source = "embeddings" the FM step is skipped.
//
// This is the pipeline of the design's data flow for a single resolved config. It is called
// by the run driver for every experiment of a sweep, on the rank(s) the scheduler assigns.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <ostream>
#include <string>

#include <torch/torch.h>

#include "dne/comm/communicator.hpp"
#include "dne/comm/device_choice.hpp"
#include "dne/config/config.hpp"
#include "dne/data/dataset.hpp"
#include "dne/data/image_cache.hpp"
#include "dne/data/manifest.hpp"
#include "dne/data/phantom.hpp"

namespace dne::experiment {

/// What run_experiment needs besides the experiment's config: the run-wide keys, the rank group
/// and its device, where progress lines go, and the process facts /provenance records.
struct ExperimentContext {
  config::RunConfig run;        // the run-wide keys: output.dir (experiments/<id>.h5, the image cache), save_embeddings, ...
  int world_size = 1;           // MPI ranks in the job
  comm::Communicator* group = nullptr;  // ranks sharing this experiment (nullptr: alone)
  comm::DeviceChoice device;    // this rank's device (run.device as resolved): where an in-process FM and the editor work
  std::string mpi_library;      // MPI_Get_library_version's first line
  std::ostream* log = nullptr;  // progress lines (nullptr: silent)
};

struct ExperimentSummary {
  std::string id;
  std::string path;            // final .h5 path
  std::string status = "complete";  // or the editor's early-stop reason
  std::map<std::string, double> metrics;
  std::map<std::string, double> control_metrics;  // the norm-matched random control (empty for ERM)
  double wall_s = 0.0;
  std::int64_t queries = 0;    // images sent to the FM by the editor
};

/// The content hash of what an experiment reads from `manifest` (data::data_content_hash with its
/// selection and data.image_hash), computed on `threads` threads.
std::string data_hash(const config::ExperimentConfig& config, const data::Manifest& manifest, int threads);

/// The content hash of an experiment's embeddings file (its bytes and the group read).
std::string embeddings_hash(const config::ExperimentConfig& config);

/// The configured data set: the phantom generated from [data] and the seed, a manifest's
/// images decoded from disk, or an embeddings file's rows (height 1, width D; checked against
/// the run's data hash; a manifest's decoded images come from the run's cache in `output_dir`
/// when `dne run` made one). Throws DataError naming the file.
data::Dataset load_dataset(const config::ExperimentConfig& config, const std::string& output_dir);

/// load_dataset for an experiment that streams its images: when the run's cache exists it is
/// mapped (`cache`, shared by the node's ranks) and the splits come back with their pixels
/// elsewhere (ImageSet::origin), so the rank holds labels, not images; otherwise as
/// load_dataset, with `cache` null.
data::Dataset load_dataset_streamed(const config::ExperimentConfig& config, const std::string& output_dir,
                                    std::shared_ptr<const data::ImageCacheMap>& cache);

/// ImageSet (N, H, W) -> tensor (N, 1, H, W) float32 (a copy).
torch::Tensor to_tensor(const data::ImageSet& set);

/// Path of experiment `id`'s result file inside `dir`.
std::string experiment_path(const std::string& dir, const std::string& id);

/// Rough cost of an experiment in images through the FM (a backward pass counts as two), from
/// its config alone: used to hand out expensive experiments first and to weigh the sweep's ETA.
double estimated_cost(const config::ExperimentConfig& config);

/// A lower bound on the memory one rank needs for an experiment on images (bytes): the embeddings
/// (clean, method, control), and for the phantom its images as 8-bit and as float32 (generated
/// in memory). A manifest's images are streamed from the run's mapped cache, one copy per node
/// in the page cache, not in any rank. The phantom's size comes from its config; a manifest's
/// once its rows are counted (data_rows_train / data_rows_test set by the run's data check); 0
/// otherwise (an embeddings file).
double estimated_memory_bytes(const config::ExperimentConfig& config);

/// Run one experiment on every rank of `context.group`; the group's rank 0 writes the file.
/// Throws dne::Error subclasses; writes nothing on failure.
ExperimentSummary run_experiment(const config::ExperimentConfig& config, const ExperimentContext& context);

}  // namespace dne::experiment
