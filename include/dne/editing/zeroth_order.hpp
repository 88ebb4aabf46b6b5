// Black-box DNE: GeZO and the two-point zeroth-order baselines RGE and SPSA.
//
// These editors see the foundation model only through `fm::EmbeddingApi` (no autograd), and
// share one experiment's work across a rank group through `comm::Communicator`:
//   comm.split = "candidates": the 2C (+1) loss evaluations of an iteration are split into
//     contiguous blocks over the ranks; each rank writes its losses into a zeroed vector and the
//     vector is all-reduced (every slot has exactly one non-zero contributor, so the sum is exact
//     and every rank takes the same decision: bitwise identical for any number of ranks);
//   comm.split = "data": every rank evaluates all candidates on its share of the batch and the
//     partial loss sums are all-reduced (floating-point order depends on the rank count).
//   comm.mode = "dense" (RGE/SPSA): each rank sums its candidates' gradient contributions and
//     the (H, W) estimate is all-reduced instead of regenerating it from the shared losses.
// Perturbation c of global iteration t is drawn from CounterStream(seed, kPerturbation, t, c),
// so it is the same tensor on every rank. The algorithms are documented in docs/gezo.md.
#pragma once

#include "dne/editing/noise_editor.hpp"

namespace dne::editing {

/// GeZO (greedy zeroth-order): R local iterations per batch of C +-candidates around the
/// momentum look-ahead; accept the best if it beats the current loss, else decay sigma.
EditResult edit_gezo(const EditProblem& problem, fm::EmbeddingApi& api, comm::Communicator& group);

/// Two-point random gradient estimation (Gaussian directions) followed by SGD/Adam.
EditResult edit_rge(const EditProblem& problem, fm::EmbeddingApi& api, comm::Communicator& group);

/// SPSA (Rademacher directions) followed by SGD/Adam.
EditResult edit_spsa(const EditProblem& problem, fm::EmbeddingApi& api, comm::Communicator& group);

/// Natural evolution strategies: q antithetic Gaussian directions u_c in the noise basis, losses
/// at theta +- sigma u_c, fitness-shaped (nes.shaping), the estimate
/// g = 1 / (2 q sigma) sum_c (w(theta + sigma u_c) - w(theta - sigma u_c)) u_c, then Adam/SGD.
EditResult edit_nes(const EditProblem& problem, fm::EmbeddingApi& api, comm::Communicator& group);

/// NES's weights of the 2q losses: "rank": centred ranks in [-1/2, 1/2] (lowest loss -1/2, ties
/// share their mean rank; a NaN or +infinite loss is the worst rank); "none": the losses themselves.
std::vector<double> nes_weights(const std::vector<double>& losses, const std::string& shaping);

/// NES's estimate from the 2q losses (2c: theta + sigma u_c, 2c + 1: theta - sigma u_c) and the
/// q directions u_c (theta's shape): 1 / (2 q sigma) sum_c (w_2c - w_2c+1) u_c with w = nes_weights.
torch::Tensor nes_gradient(const std::vector<double>& losses, const std::vector<torch::Tensor>& directions, double sigma,
                           const std::string& shaping);

/// The loss a zeroth-order editor measures at `eps` (H, W) on the batch x (B, 1, H, W), a (B,)
/// with the problem's probe g, shared over `group` as in an iteration (for tests: it must equal
/// dne_objective on the same batch).
double zeroth_order_loss(const EditProblem& problem, fm::EmbeddingApi& api, comm::Communicator& group,
                         const torch::Tensor& x, const torch::Tensor& a, const torch::Tensor& eps);

/// Images a zeroth-order editor embeds for one iteration: evaluations x batch size.
std::int64_t images_per_iteration(std::int64_t evaluations, std::int64_t batch);

}  // namespace dne::editing
