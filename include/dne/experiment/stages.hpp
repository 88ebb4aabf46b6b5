// The stages of one experiment and the state they hand on (internal to the experiment module).
//
// run_experiment (experiment.cpp) is this list, in order; each stage reads what the earlier
// ones left in ExperimentState and adds its own part:
//   load_data         the splits' labels and images (data.*: phantom, image cache, embeddings file),
//                     label poisoning, the validation carve, the seed's resample
//   embed_clean       the FM (in process, on run.device, or remote) and the clean embeddings
//                     of every split the method needs
//   fit_frozen_probe  g, the SA probe on the clean training embeddings, and what every
//                     evaluation is scored with (EvalContext)
//   the method        the registry's run function (method_registry.hpp): the method's
//                     embeddings and its control's, each through evaluate() (evaluation.hpp)
//   gather_traffic    a remote FM's requests, retries and bytes over the group
//   write_result_file the result file's layout (result_layout.hpp), group rank 0 only
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "dne/api/inference_client.hpp"
#include "dne/comm/communicator.hpp"
#include "dne/config/config.hpp"
#include "dne/config/methods.hpp"
#include "dne/data/dataset.hpp"
#include "dne/data/image_cache.hpp"
#include "dne/data/phantom.hpp"
#include "dne/editing/image_rows.hpp"
#include "dne/editing/trace.hpp"
#include "dne/experiment/evaluation.hpp"
#include "dne/experiment/experiment.hpp"
#include "dne/fm/foundation_model.hpp"
#include "dne/probe/linear_probe.hpp"

namespace dne::experiment {

/// What the method stage leaves: the method's evaluation and its control's, and for the noise
/// methods the noise, its trace, the validation progress and what dne.keep chose.
struct MethodOutcome {
  Downstream result, control;         // control: empty metrics without one (ERM)
  torch::Tensor noise, control_noise;  // (H, W) float32 on the host, noise methods only
  Trace trace;                         // per step (editors) or per epoch (the VAE)
  Trace progress;                      // dne.eval_every's validation measurements
  std::map<std::string, double> control_on_validation;  // the control noise's end point beside /progress
  std::vector<double> val_losses;      // dne.keep = "best_val": each candidate noise's validation loss
  std::int64_t kept_checkpoint = -1;   // and the one kept (-1: dne.keep = "last")
  std::optional<data::PhantomRegions> regions;  // where the phantom draws the SA cues and the effusion
  std::string status = "complete";     // or the editor's early-stop reason
  std::int64_t queries = 0;            // images the editor sent to the FM over the group
};

/// Everything the stages of one experiment share, filled in stage order.
struct ExperimentState {
  ExperimentState(const config::ExperimentConfig& config, const ExperimentContext& context);
  // `eval` points at `g` and `dataset`: a copy would point into the original.
  ExperimentState(const ExperimentState&) = delete;
  ExperimentState& operator=(const ExperimentState&) = delete;

  const config::ExperimentConfig& c;     // the experiment's resolved config
  const ExperimentContext& ctx;          // the run-wide keys, the group, the device, the log
  const config::MethodInfo& method_info;  // c.dne.method's entry in config's method table
  std::uint64_t seed = 0;            // sweep.seeds
  bool images = true;                // false for data.source = "embeddings": the rows are embeddings already
  std::map<std::string, double> timings;  // /timings

  // load_data: (N, 1, H, W) images as batches on demand (or (N, D) embedding rows), labels, SA
  std::shared_ptr<const data::ImageCacheMap> cache;  // the run's image cache, mapped (manifests)
  data::Dataset dataset;
  std::vector<std::int64_t> poisoned;  // indices in the training split as loaded
  bool has_val = false;
  editing::ImageRows x_train, x_val, x_test;
  torch::Tensor y_train, a_train;  // (N,) int64

  // the rank group (ctx.group, or this rank alone)
  std::unique_ptr<comm::Communicator> alone;
  comm::Communicator* group = nullptr;

  // embed_clean
  std::shared_ptr<fm::EmbeddingModel> model;  // null for an embeddings file
  torch::Device edit_device = torch::kCPU;    // where the editor works: the in-process FM's device
  std::map<std::string, std::string> fm_provenance;
  Splits clean;  // (N, D) per split; val only when the method needs it

  // fit_frozen_probe
  std::optional<probe::LinearProbe> g;
  std::optional<EvalContext> eval;

  // the method stage
  MethodOutcome outcome;

  // gather_traffic: a remote FM's requests, retries, bytes sent and received over the group
  std::vector<double> traffic;
  api::ClientStats client_stats;

  /// N images (+ eps (H, W) when defined: x + eps, batch by batch) -> (N, D), embedded over the
  /// group in chunks of fm.batch_size (comm::embed_over_group). ModelError on non-finite output.
  torch::Tensor embed(const editing::ImageRows& x, const torch::Tensor& eps) const;
  /// One progress line for the leader's log (nothing when ctx.log is null).
  void say(const std::string& line) const;
};

void load_data(ExperimentState& s);
void embed_clean(ExperimentState& s);
void fit_frozen_probe(ExperimentState& s);
void gather_traffic(ExperimentState& s);

/// Seconds since `t`.
double seconds_since(std::chrono::steady_clock::time_point t);

}  // namespace dne::experiment
