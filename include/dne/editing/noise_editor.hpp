// Noise editors: the ways of learning one additive noise image eps (H, W).
//
// An editor gets the training images, their sensitive attributes, the frozen SA probe g, and
// access to the foundation model. The method registry (experiment/method_registry.hpp) joins
// each `dne.method` to its editor:
//   none      eps = 0 (ERM baseline)
//   random    i.i.d. Gaussian eps scaled to ||eps||_2 = dne.random_l2 (a control: does any
//             perturbation of that size change fairness, or only the learned one?)
//   whitebox  Adam on eps through the model's autograd graph
//   gezo      greedy zeroth-order search with momentum (zeroth_order.hpp)
//   rge, spsa two-point zeroth-order gradient estimates + SGD/Adam (zeroth_order.hpp)
//   nes       natural evolution strategies: antithetic directions, rank-shaped losses (zeroth_order.hpp)
// Every learning editor optimises coefficients theta of a noise basis (dne.noise_basis,
// noise_basis.hpp): the FM sees eps = B(theta); the pixel basis is eps itself.
// The objective (objective.hpp) is shared by all editors. Zeroth-order editors receive only the
// EmbeddingApi and the rank group's Communicator.
#pragma once

#include <functional>
#include <string>

#include <torch/torch.h>

#include "dne/comm/communicator.hpp"
#include "dne/comm/group_embedding.hpp"
#include "dne/config/config.hpp"
#include "dne/editing/image_rows.hpp"
#include "dne/editing/trace.hpp"
#include "dne/fm/foundation_model.hpp"
#include "dne/probe/linear_probe.hpp"

namespace dne::editing {

/// What every editor optimises against.
struct EditProblem {
  ImageRows images;                // N training images (H, W), float32 batches on the host
  torch::Tensor sa;                // (N,) float32 sensitive attribute 0/1, on the host
  const probe::LinearProbe* sa_probe = nullptr;  // frozen g
  config::DneOptions options;
  std::uint64_t seed = 0;
  config::ZerothOrderOptions zo{};        // zeroth-order editors only
  config::CommOptions comm{};        // how the rank group shares the work
  config::ProbeOptions probes{};     // how the adversary is re-fitted (dne.adversary = "refit")
  /// Where the editor works (run.device): its noise, batches, probe, losses and gradient
  /// estimates live here; the images stay on the host and move over a batch at a time (from
  /// page-locked memory). Inside the loops only the scalars that decisions and the trace need
  /// come back (one copy per step). The model must return embeddings on its input's device.
  torch::Device device = torch::kCPU;
  /// dne.eval_every > 0: the experiment's measurement of a noise (H, W) on the validation split
  /// after `queries` queries (white-box: images). Every rank of the group calls it with the same
  /// arguments (it may embed over the group); its queries are not the editor's (not counted,
  /// not budgeted). The editors call it through ProgressReporter.
  std::function<void(const torch::Tensor& eps, std::int64_t queries)> progress{};
};

/// When an editor hands its noise to EditProblem::progress: at 0 queries, whenever another
/// dne.eval_every queries are spent (checked between steps, so a mark is reported at the first
/// step boundary at or after it), and at the end. Does nothing when eval_every = 0 or no
/// callback is set.
class ProgressReporter {
 public:
  explicit ProgressReporter(const EditProblem& problem) : problem_(problem) {}
  /// Report `eps` if `queries` has reached the next mark.
  void at(const torch::Tensor& eps, std::int64_t queries);
  /// Report the final `eps` unless it was just reported at these queries.
  void finish(const torch::Tensor& eps, std::int64_t queries);

 private:
  bool enabled() const { return problem_.options.eval_every > 0 && problem_.progress; }
  const EditProblem& problem_;
  std::int64_t next_ = 0, last_ = -1;
};

/// `host` (a batch of the problem's images or attributes) on the problem's device: itself on the
/// CPU, else an asynchronous copy from page-locked memory.
torch::Tensor to_problem_device(const EditProblem& problem, const torch::Tensor& host);

/// The values of `t` (any shape, device and real dtype) as doubles, in one copy to the host.
std::vector<double> values_to_host(const torch::Tensor& t);
/// Scalar tensors (0-dim or one element, any device and real dtype) as doubles, in one copy.
std::vector<double> scalars_to_host(const std::vector<torch::Tensor>& scalars);

/// The two ways into the model; each editor uses exactly one of them.
struct ModelAccess {
  fm::DifferentiableModel* whitebox;  // nullptr for a remote FM (no gradients)
  fm::EmbeddingApi& api;
  comm::Communicator& group;       // the ranks sharing this experiment (size 1: alone)
};

struct EditResult {
  torch::Tensor noise;             // (H, W) float32, on the host
  Trace trace;
  std::string status = "complete";  // or why optimisation stopped early
  std::int64_t queries = 0;        // images embedded by the editor over the whole rank group
  std::vector<torch::Tensor> checkpoints;  // (H, W) noise at the end of every completed epoch (dne.keep), host
};

/// `noise` (H, W) and `checkpoints` on the problem's device -> into `r` on the host (one copy each,
/// after the editing loop).
void finish_on_host(EditResult& r, const torch::Tensor& noise, const std::vector<torch::Tensor>& checkpoints);

using Editor = std::function<EditResult(const EditProblem&, ModelAccess&)>;

/// The training set in dne.epochs passes of shuffled batches of dne.batch_size (order from stream
/// (seed, kBatchOrder, epoch, 0)); `step(x (B, 1, H, W), sa (B,), batch index, epoch)` returns
/// false to stop early; `epoch_end(epoch)` runs after every completed epoch (editors record their
/// checkpoints there). Every editor walks the data through this one loop.
using BatchStep = std::function<bool(const torch::Tensor&, const torch::Tensor&, std::int64_t, std::int64_t)>;
void for_each_batch(const EditProblem& problem, const BatchStep& step,
                    const std::function<void(std::int64_t)>& epoch_end = {});

/// The SA probe an editor optimises against (dne.adversary). "frozen": the problem's g, fitted
/// once on clean embeddings. "refit": before every dne.refit_every-th batch (never the first: at
/// eps = 0 a refit is g itself) g is re-fitted on the embeddings of every training image at the
/// current noise, so the noise must remove the attribute rather than push embeddings across one
/// fixed boundary. The training set is embedded in fixed chunks of dne.batch_size images dealt
/// round-robin over the rank group and summed (one non-zero contributor per slot), so every rank
/// fits the same probe on the same bits for any group size.
class Adversary {
 public:
  /// Batches of images (b_i, 1, H, W) with the noise added -> their embeddings (b_i, D), no autograd.
  using Embed = comm::EmbedBatches;

  explicit Adversary(const EditProblem& problem);
  const probe::LinearProbe& probe() const { return current_; }
  /// Is a refit due before batch `batch` (0-based, counted over all epochs)?
  bool due(std::int64_t batch) const;
  /// Images one refit embeds over the whole group (the training set).
  std::int64_t images_per_refit() const { return problem_.images.size(); }
  /// Re-fit g on the training images with `eps` (H, W) added; every rank of `group` must call it.
  /// `window`: batches worth handing `embed` at once (the model's parallelism).
  void refit(const torch::Tensor& eps, const Embed& embed, int window, comm::Communicator& group);
  std::int64_t refits() const { return refits_; }

 private:
  const EditProblem& problem_;
  torch::Tensor sa_;  // (N,) the training attributes on the problem's device
  probe::LinearProbe current_;
  std::int64_t refits_ = 0;
};

/// ERM: zero noise, no queries.
EditResult edit_none(const EditProblem& problem);
/// Control: Gaussian noise from stream (seed, kNoiseInit, 0, 0), scaled to dne.random_l2.
EditResult edit_random(const EditProblem& problem);
/// White-box DNE: Adam on eps, gradients through the model, against the Adversary's probe
/// (`group` shares the adversary's refits).
EditResult edit_whitebox(const EditProblem& problem, fm::DifferentiableModel& model, comm::Communicator& group);

}  // namespace dne::editing
