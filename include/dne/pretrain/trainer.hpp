// `dne pretrain`: data-parallel MAE pretraining of the built-in ViT, with checkpoints and resume.
//
// Each optimiser step takes `batch_size` images of an epoch's permutation and splits them into
// `micro_batches` fixed micro-batches; the ranks of the group share the micro-batches (contiguous
// blocks), compute each one's gradient alone, and all-gather them, and every rank sums the
// micro-batch gradients in micro-batch order. The sum, and so every bit of the trained weights,
// is therefore the same for 1, 2 or 3 ranks. The trainer sees images only: labels and sensitive
// attributes are never passed to it. Rank 0 writes a checkpoint (weights, AdamW moments, step,
// loss curve) every `checkpoint_every` steps to "<out>.ckpt" (temporary name, then rename); a
// rerun of the same config resumes from it and continues bit for bit. A SIGTERM / SIGINT
// (StopOnSignal installed by the caller) received by any rank stops every rank after the same
// step, with a checkpoint of that step, by throwing dne::Interrupted. The result is an FM file
// (docs/fm-file.md) whose provenance holds the data description, steps, loss curve, config
// text, its hash and the git commit.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include <torch/torch.h>

#include "dne/comm/communicator.hpp"
#include "dne/config/config.hpp"

namespace dne::pretrain {

struct PretrainIo {
  std::string out_path;          // the FM file to write
  std::string data_description;  // stored in /provenance@data
  std::ostream* log = nullptr;   // progress lines (rank 0; nullptr = quiet)
  std::int64_t kill_after_step = -1;  // testing: rank 0 SIGKILLs itself after checkpointing this step
};

struct PretrainSummary {
  bool up_to_date = false;       // the FM file already held this config's result: nothing ran
  std::int64_t resumed_from = 0; // step the run started from (0 = fresh)
  std::int64_t steps = 0;
  double final_loss = 0.0;
  double images_per_s = 0.0;     // this run's throughput over all ranks
  double wall_s = 0.0;
  // Where this rank's step time went (this run's steps): forward+backward of its micro-batches,
  // the all-gather of their gradients, and the ordered sum + AdamW update.
  double compute_s = 0.0, exchange_s = 0.0, update_s = 0.0;
  std::uint64_t bytes_per_step = 0;  // payload this rank passes to the all-gather per step
};

/// Checkpoint path of an output FM file.
std::string checkpoint_path(const std::string& out_path);

/// Hash of what determines the result (config.pretrain_text()), 16 hex digits.
std::string pretrain_hash(const config::ExperimentConfig& config);

/// Pretrain on `images` (N, 1, S, S) in [0, 1] over the ranks of `group`; every rank must call it.
PretrainSummary run_pretraining(const config::ExperimentConfig& config, const torch::Tensor& images,
                                comm::Communicator& group, const PretrainIo& io);

}  // namespace dne::pretrain
