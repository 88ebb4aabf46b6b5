// GeZO, RGE, SPSA and NES noise editors over an EmbeddingApi, sharded over a rank group
// (see zeroth_order.hpp and docs/gezo.md).
#include "dne/editing/zeroth_order.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "dne/comm/tensor_sum.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/random.hpp"
#include "dne/core/stop_signal.hpp"
#include "dne/editing/noise_basis.hpp"
#include "dne/editing/objective.hpp"

namespace dne::editing {
namespace {

using Clock = std::chrono::steady_clock;

/// What every zeroth-order iteration needs: the batch, the API, the group, the options, and the
/// adversary whose probe the SA term is measured with.
struct ZoContext {
  const EditProblem& problem;
  fm::EmbeddingApi& api;
  comm::Communicator& group;
  NoiseBasis basis;  // the editor optimises coefficients theta; the FM sees basis.noise(theta)
  Adversary adversary;
  ProgressReporter progress;

  ZoContext(const EditProblem& p, fm::EmbeddingApi& a, comm::Communicator& g)
      : problem(p), api(a), group(g), basis(NoiseBasis::from_options(p.options, p.images.height(), p.images.width(), p.device)),
        adversary(p), progress(p) {}
  /// A zero theta on the problem's device.
  torch::Tensor zero_theta(bool requires_grad = false) const {
    return torch::zeros(basis.shape(), torch::TensorOptions().device(problem.device).requires_grad(requires_grad));
  }
  /// Direction c of global iteration t in theta's shape (see direction()).
  torch::Tensor direction(std::int64_t t, std::int64_t c, bool rademacher) const;
  /// The noise (H, W) the FM sees at theta.
  torch::Tensor noise(const torch::Tensor& theta) const { return basis.noise(theta, problem.options); }
};

/// For evaluations e in [lo, hi): the per-sample SA term summed over the images x (b, 1, H, W)
/// with point(e) added (neg_ce: -CE(g, a); confusion: CE(g, 1/2)) into sums[e], and the number
/// of images g classifies correctly into sums[n + e]; `sums` (2n + 1,) float64 lives on the
/// problem's device, so nothing is copied to the host here. The API gets `parallelism()`
/// evaluations per call (1 for an in-process FM: one call per evaluation, as always).
void sa_term_sums(ZoContext& ctx, const std::function<torch::Tensor(std::int64_t)>& point, std::size_t lo,
                  std::size_t hi, const torch::Tensor& x, const torch::Tensor& a, torch::Tensor& sums, std::size_t n) {
  if (x.size(0) == 0) return;
  const auto window = static_cast<std::size_t>(std::max(1, ctx.api.parallelism()));
  for (std::size_t w = lo; w < hi; w += window) {
    throw_if_stop_requested("while evaluating candidates");  // the callers' failure slot carries it to the group
    const std::size_t end = std::min(hi, w + window);
    std::vector<torch::Tensor> images;
    for (std::size_t e = w; e < end; ++e) images.push_back(add_noise(x, point(static_cast<std::int64_t>(e)), ctx.problem.options));
    const auto zs = ctx.api.embed_each(images);  // (b, D) each, no autograd
    for (std::size_t e = w; e < end; ++e) {
      const auto logits = ctx.adversary.probe().logits(zs[e - w]);  // (b,)
      const auto terms = sa_term_per_image(logits, a, ctx.problem.options.objective);
      sums[static_cast<std::int64_t>(e)].copy_(terms.to(torch::kFloat64).sum());
      sums[static_cast<std::int64_t>(n + e)].copy_(((logits > 0).to(torch::kFloat32) == a).to(torch::kFloat64).sum());
    }
  }
}

/// ||t||_2 as a 0-dim float32 tensor on t's device (read with scalars_to_host).
torch::Tensor l2(const torch::Tensor& t) { return t.pow(2).sum().sqrt(); }

/// The loss slots (2n + 1,) float64 on `device`: [SA term sums (n) | correct counts (n) | ranks that failed].
torch::Tensor loss_slots(std::size_t n, const torch::Device& device) {
  return torch::zeros({static_cast<std::int64_t>(2 * n + 1)}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
}

/// True (and `status` set) if `cost` more images would exceed the budget.
bool over_budget(const config::ZerothOrderOptions& o, std::int64_t queries, std::int64_t cost, std::string& status) {
  if (o.budget <= 0 || queries + cost <= o.budget) return false;
  status = "budget: stopped after " + std::to_string(queries) + " of " + std::to_string(o.budget) +
           " images (the next iteration needs " + std::to_string(cost) + ")";
  return true;
}

/// Before batch `batch`: re-fit the adversary at `eps` through the API if it is due. Counts the
/// group's images into `r.queries`; false (status set) when the refit would exceed the budget.
bool refit_if_due(ZoContext& ctx, std::int64_t batch, const torch::Tensor& eps, EditResult& r, bool& refitted) {
  refitted = ctx.adversary.due(batch);
  if (!refitted) return true;
  if (over_budget(ctx.problem.zo, r.queries, ctx.adversary.images_per_refit(), r.status)) return false;
  ctx.adversary.refit(eps, [&](const std::vector<torch::Tensor>& b) { return ctx.api.embed_each(b); }, ctx.api.parallelism(),
                      ctx.group);
  r.queries += ctx.adversary.images_per_refit();
  return true;
}

/// The start of every editor's step on batch `batch`: the progress hand-over (dne.eval_every) and
/// the adversary's refit, both at the noise of theta; false (status set) when the refit would
/// exceed the budget.
bool begin_batch(ZoContext& ctx, std::int64_t batch, const torch::Tensor& theta, EditResult& r, bool& refitted) {
  const auto eps = ctx.noise(theta.detach());
  ctx.progress.at(eps, r.queries);
  return refit_if_due(ctx, batch, eps, r, refitted);
}

/// The end of every editor: the final noise of theta to the progress hand-over, and the noise and
/// checkpoints into `r` on the host.
EditResult finish(ZoContext& ctx, EditResult& r, const torch::Tensor& theta, const std::vector<torch::Tensor>& checkpoints) {
  const auto noise = ctx.noise(theta.detach());
  ctx.progress.finish(noise, r.queries);
  finish_on_host(r, noise, checkpoints);
  return std::move(r);
}

/// Losses of E evaluation points on one batch, and g's accuracy at each point, shared by every
/// rank of the group. `point(e)` gives the (H, W) noise of evaluation e on any rank.
struct Evaluations {
  std::vector<double> loss, accuracy;
};

Evaluations evaluate(ZoContext& ctx, const std::function<torch::Tensor(std::int64_t)>& point,
                     std::int64_t count, const torch::Tensor& x, const torch::Tensor& a) {
  const auto& o = ctx.problem.options;
  const std::int64_t batch = x.size(0);
  const auto n = static_cast<std::size_t>(count);
  auto sums = loss_slots(n, ctx.problem.device);
  const int rank = ctx.group.rank(), size = ctx.group.size();
  std::exception_ptr failure;  // a remote request that gave up: the group stops together
  try {
    if (ctx.problem.comm.split == "data") {
      const auto [lo, hi] = comm::shard_range(static_cast<std::size_t>(batch), rank, size);
      const auto xs = x.slice(0, static_cast<std::int64_t>(lo), static_cast<std::int64_t>(hi));
      const auto as = a.slice(0, static_cast<std::int64_t>(lo), static_cast<std::int64_t>(hi));
      sa_term_sums(ctx, point, 0, n, xs, as, sums, n);
    } else {
      const auto [lo, hi] = comm::shard_range(n, rank, size);
      sa_term_sums(ctx, point, lo, hi, x, a, sums, n);
    }
  } catch (const Error&) {
    failure = std::current_exception();
    sums[static_cast<std::int64_t>(2 * n)].fill_(1.0);
  }
  comm::allreduce_sum(ctx.group, sums);  // on the device with NCCL
  if (failure) std::rethrow_exception(failure);
  // The decision's scalars in one copy: the group's sums and every point's norm.
  std::vector<torch::Tensor> norms;
  for (std::size_t e = 0; e < n; ++e) norms.push_back(l2(point(static_cast<std::int64_t>(e))));
  const auto v = values_to_host(torch::cat({sums, torch::stack(norms).to(torch::kFloat64)}));
  if (v[2 * n] > 0.0) throw PeerFailure("another rank of the group failed while evaluating candidates");
  Evaluations out;
  for (std::size_t e = 0; e < n; ++e) {
    const double loss = objective_value(v[e], batch, v[2 * n + 1 + e], o);
    out.loss.push_back(std::isnan(loss) ? std::numeric_limits<double>::infinity() : loss);
    out.accuracy.push_back(v[n + e] / static_cast<double>(batch));
  }
  return out;
}

/// (h, w) direction c of global iteration t from stream (seed, kPerturbation, t, c):
/// standard normal, or Rademacher (+-1) when `rademacher`; drawn on the host (the same bits on
/// every device) and uploaded to `device` asynchronously. (h, w): theta's shape.
torch::Tensor draw_direction(std::uint64_t seed, std::int64_t t, std::int64_t c, std::int64_t h,
                        std::int64_t w, bool rademacher, const torch::Device& device) {
  std::vector<float> v(static_cast<std::size_t>(h * w));
  CounterStream s(seed, StreamPurpose::kPerturbation, static_cast<std::uint32_t>(t),
                  static_cast<std::uint32_t>(c));
  if (rademacher) {
    for (auto& x : v) x = (s.next_u32() & 1u) ? 1.0f : -1.0f;
  } else {
    s.fill_normal(v.data(), v.size());
  }
  const auto host = torch::from_blob(v.data(), {h, w}, torch::kFloat32);
  return device.is_cpu() ? host.clone() : host.pin_memory().to(device, /*non_blocking=*/true);
}

torch::Tensor ZoContext::direction(std::int64_t t, std::int64_t c, bool rademacher) const {
  const auto shape = basis.shape();
  return draw_direction(problem.seed, t, c, shape[0], shape[1], rademacher, problem.device);
}

void check_finite(double loss, const char* method, std::int64_t step) {
  if (!std::isfinite(loss))
    throw NumericError(std::string(method) + ": loss at the current noise is not finite at step " +
                       std::to_string(step));
}

/// One update of theta by the estimate `grad` (theta's shape): SGD or Adam (gezo.optimizer),
/// then the budget (NoiseBasis::project).
void update_theta(ZoContext& ctx, torch::Tensor& theta, torch::optim::Adam& adam, const torch::Tensor& grad) {
  const auto& g = ctx.problem.zo;
  if (g.optimizer == "sgd") {
    torch::NoGradGuard ng;
    theta.sub_(g.lr * grad);
  } else {
    theta.mutable_grad() = grad;
    adam.step();
  }
  torch::NoGradGuard ng;
  theta.copy_(ctx.basis.project(theta.detach(), ctx.problem.options));  // the budget holds after every update
}

/// What an estimate-and-update editor (RGE, SPSA, NES) carries from step to step: theta (the
/// coefficients; the FM sees ctx.noise(theta)) under Adam at zo.lr, the result, the epoch-end
/// checkpoints, its start time, the step count t and the points a step evaluates.
struct AdamSteps {
  explicit AdamSteps(const ZoContext& ctx)
      : theta(ctx.zero_theta(/*requires_grad=*/true)), adam({theta}, torch::optim::AdamOptions(ctx.problem.zo.lr)) {}
  torch::Tensor theta;
  torch::optim::Adam adam;
  EditResult r;
  std::vector<torch::Tensor> checkpoints;
  Clock::time_point start = Clock::now();
  std::int64_t t = 0;
  std::int64_t evaluations = 0;  // points evaluated per step
};

/// One step of an estimate-and-update editor: on batch x (b, 1, H, W) with attributes a (b,),
/// whether the adversary was just re-fitted, and the images its evaluations cost.
using AdamStep = std::function<void(AdamSteps& s, const torch::Tensor& x, const torch::Tensor& a, std::int64_t batch,
                                    std::int64_t epoch, bool refitted, std::int64_t cost)>;

/// The loop of an estimate-and-update editor whose step evaluates `evaluations` points: on every
/// batch the step's start (begin_batch, then the budget for the evaluations' images: past it the
/// editing ends with its status), `step`, t counted; the noise of theta kept at every epoch's end;
/// the editor's end (finish).
EditResult run_adam_steps(ZoContext& ctx, std::int64_t evaluations, const AdamStep& step) {
  AdamSteps s(ctx);
  s.evaluations = evaluations;
  for_each_batch(ctx.problem, [&](const torch::Tensor& x, const torch::Tensor& a, std::int64_t batch, std::int64_t epoch) {
    bool refitted = false;
    if (!begin_batch(ctx, batch, s.theta, s.r, refitted)) return false;
    const std::int64_t cost = images_per_iteration(evaluations, x.size(0));
    if (over_budget(ctx.problem.zo, s.r.queries, cost, s.r.status)) return false;
    step(s, x, a, batch, epoch, refitted, cost);
    ++s.t;
    return true;
  }, [&](std::int64_t) { s.checkpoints.push_back(ctx.noise(s.theta.detach()).clone()); });
  return finish(ctx, s.r, s.theta, s.checkpoints);
}

/// The trace columns every estimate-and-update step (RGE, SPSA, NES) ends with.
void trace_step_end(ZoContext& ctx, AdamSteps& s, bool refitted, double grad_norm) {
  s.r.trace.add("refit", refitted ? 1.0 : 0.0);
  s.r.trace.add("grad_norm", grad_norm);
  s.r.trace.add("noise_l2", scalars_to_host({l2(ctx.noise(s.theta.detach()))})[0]);
  s.r.trace.add("queries", static_cast<double>(s.r.queries));
  s.r.trace.add("bytes", static_cast<double>(ctx.group.bytes_communicated()));
  s.r.trace.add("wall_s", std::chrono::duration<double>(Clock::now() - s.start).count());
}

/// The search directions of one step, each drawn on first use and kept: u_c = ctx.direction(t, c)
/// times `scale` (counter-based: the draw order does not change a bit).
class StepDirections {
 public:
  StepDirections(const ZoContext& ctx, std::int64_t t, std::int64_t count, bool rademacher, double scale = 1.0)
      : ctx_(ctx), t_(t), rademacher_(rademacher), scale_(scale), dirs_(static_cast<std::size_t>(count)) {}
  const torch::Tensor& operator()(std::int64_t c) {
    auto& d = dirs_[static_cast<std::size_t>(c)];
    if (!d.defined()) {
      d = ctx_.direction(t_, c, rademacher_);
      if (scale_ != 1.0) d = static_cast<float>(scale_) * d;
    }
    return d;
  }
  /// Every direction, drawn.
  const std::vector<torch::Tensor>& all() {
    for (std::size_t c = 0; c < dirs_.size(); ++c) (*this)(static_cast<std::int64_t>(c));
    return dirs_;
  }

 private:
  const ZoContext& ctx_;
  std::int64_t t_;
  bool rademacher_;
  double scale_;
  std::vector<torch::Tensor> dirs_;
};

/// RGE and SPSA share everything but the direction distribution.
EditResult edit_two_point(const EditProblem& p, fm::EmbeddingApi& api, comm::Communicator& group,
                          bool rademacher, const char* name) {
  ZoContext ctx(p, api, group);
  const auto& g = p.zo;
  const std::int64_t q = g.candidates;
  const double mu = g.sigma;
  const bool dense = p.comm.mode == "dense";
  const auto on = torch::TensorOptions().device(p.device);
  return run_adam_steps(ctx, 2 * q + 1, [&](AdamSteps& s, const torch::Tensor& x, const torch::Tensor& a,
                                            std::int64_t batch, std::int64_t epoch, bool refitted, std::int64_t cost) {
    torch::Tensor& theta = s.theta;
    const auto th = theta.detach();
    StepDirections dir(ctx, s.t, q, rademacher);
    // Evaluation 0: theta (for the trace); 1 + 2c: theta + mu u_c; 2 + 2c: theta - mu u_c (the FM
    // sees their noises; pixel basis: the points themselves).
    auto point = [&](std::int64_t e) -> torch::Tensor {
      if (e == 0) return ctx.noise(th);
      const std::int64_t c = (e - 1) / 2;
      return ctx.noise((e - 1) % 2 == 0 ? th + mu * dir(c) : th - mu * dir(c));
    };
    torch::Tensor grad = torch::zeros(ctx.basis.shape(), on);  // in theta's shape
    torch::Tensor loss_at_eps, accuracy_at_eps;  // dense mode: 0-dim, on the device until the step's copy
    Evaluations ev;
    if (!dense) {
      // Seed mode: only the 2q + 1 losses cross the network; every rank rebuilds the same estimate.
      ev = evaluate(ctx, point, s.evaluations, x, a);
      for (std::int64_t c = 0; c < q; ++c)
        grad += static_cast<float>((ev.loss[static_cast<std::size_t>(1 + 2 * c)] -
                                    ev.loss[static_cast<std::size_t>(2 + 2 * c)]) / (2.0 * mu * static_cast<double>(q))) * dir(c);
    } else {
      // Dense mode: each rank evaluates whole candidates (both signs) and sums their contributions;
      // the estimate (theta's shape) is all-reduced. Evaluation 0 is rank 0's.
      const auto [lo, hi] = comm::shard_range(static_cast<std::size_t>(q), group.rank(), group.size());
      const auto n = static_cast<std::size_t>(s.evaluations);
      auto sums = loss_slots(n, p.device);
      const double b = static_cast<double>(x.size(0));
      // The loss of evaluation e from the slots, on the device (the host formula, same bits).
      const auto loss_of = [&](std::int64_t e) {
        return objective_value(sums[e], x.size(0), l2(point(e)), p.options);
      };
      std::exception_ptr failure;  // a remote request that gave up: the group stops together
      try {
        if (group.rank() == 0) sa_term_sums(ctx, point, 0, 1, x, a, sums, n);
        for (auto c = static_cast<std::int64_t>(lo); c < static_cast<std::int64_t>(hi); ++c) {
          sa_term_sums(ctx, point, static_cast<std::size_t>(1 + 2 * c), static_cast<std::size_t>(3 + 2 * c), x, a, sums, n);
          grad += divide(loss_of(1 + 2 * c) - loss_of(2 + 2 * c), 2.0 * mu * static_cast<double>(q)).to(torch::kFloat32) * dir(c);
        }
      } catch (const Error&) {
        failure = std::current_exception();
        sums[static_cast<std::int64_t>(2 * n)].fill_(1.0);
      }
      comm::allreduce_sum(group, sums);  // for the trace (loss at eps, accuracy), and failures
      if (failure) std::rethrow_exception(failure);
      if (scalars_to_host({sums[static_cast<std::int64_t>(2 * n)]})[0] > 0.0)
        throw PeerFailure("another rank of the group failed while evaluating directions");
      comm::allreduce_sum(group, grad);
      loss_at_eps = loss_of(0);
      accuracy_at_eps = divide(sums[static_cast<std::int64_t>(n)], b);
    }
    s.r.queries += cost;
    // The step's scalars in one copy (the checks throw before the update is ever used).
    const auto v = scalars_to_host({dense ? loss_at_eps : torch::zeros({}, on), dense ? accuracy_at_eps : torch::zeros({}, on),
                                    torch::isfinite(grad).all(), l2(grad)});
    if (dense) ev = Evaluations{{v[0]}, {v[1]}};
    check_finite(ev.loss[0], name, s.t);
    if (v[2] == 0.0)
      throw NumericError(std::string(name) + ": a candidate loss or the gradient estimate is not finite at step " +
                         std::to_string(s.t) + " (try a smaller zo.sigma or zo.lr)");
    update_theta(ctx, theta, s.adam, grad);
    s.r.trace.add("step", static_cast<double>(s.t));
    s.r.trace.add("batch", static_cast<double>(batch));
    s.r.trace.add("epoch", static_cast<double>(epoch));
    s.r.trace.add("loss", ev.loss[0]);
    s.r.trace.add("sa_accuracy", ev.accuracy[0]);
    trace_step_end(ctx, s, refitted, v[3]);
  });
}

/// Centred ranks of `losses` in [-1/2, 1/2] (the lowest loss -1/2, ties sharing their mean
/// rank): the fitness shaping of natural evolution strategies, invariant to any increasing
/// transformation of the loss and to outliers (an infinite loss is just the worst rank).
std::vector<double> centred_ranks(const std::vector<double>& losses) {
  const std::size_t n = losses.size();
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t i, std::size_t j) { return losses[i] < losses[j]; });
  std::vector<double> out(n, 0.0);
  if (n < 2) return out;
  for (std::size_t begin = 0; begin < n;) {
    std::size_t end = begin + 1;
    while (end < n && losses[order[end]] == losses[order[begin]]) ++end;
    const double rank = 0.5 * static_cast<double>(begin + end - 1);  // the mean of ranks begin..end-1
    for (std::size_t k = begin; k < end; ++k) out[order[k]] = rank / static_cast<double>(n - 1) - 0.5;
    begin = end;
  }
  return out;
}

}  // namespace

std::vector<double> nes_weights(const std::vector<double>& losses, const std::string& shaping) {
  if (shaping == "rank") {  // a NaN loss is the worst (+infinity), as evaluate() counts it: a strict order
    auto ordered = losses;
    for (auto& l : ordered)
      if (std::isnan(l)) l = std::numeric_limits<double>::infinity();
    return centred_ranks(ordered);
  }
  if (shaping == "none") return losses;
  throw ConfigError("nes.shaping: unknown shaping '" + shaping + "' (one of: rank, none)");
}

torch::Tensor nes_gradient(const std::vector<double>& losses, const std::vector<torch::Tensor>& directions, double sigma,
                           const std::string& shaping) {
  const auto q = directions.size();
  if (q == 0 || losses.size() != 2 * q)
    throw Error("internal: nes_gradient needs 2q losses for q directions (" + std::to_string(losses.size()) + ", " +
                std::to_string(q) + ")");
  const auto w = nes_weights(losses, shaping);
  auto grad = torch::zeros_like(directions[0]);
  for (std::size_t c = 0; c < q; ++c)
    grad += static_cast<float>((w[2 * c] - w[2 * c + 1]) / (2.0 * sigma * static_cast<double>(q))) * directions[c];
  return grad;
}

EditResult edit_nes(const EditProblem& p, fm::EmbeddingApi& api, comm::Communicator& group) {
  ZoContext ctx(p, api, group);
  const auto& g = p.zo;
  const std::int64_t q = g.candidates;  // antithetic pairs
  const double sigma = g.sigma;
  return run_adam_steps(ctx, 2 * q, [&](AdamSteps& s, const torch::Tensor& x, const torch::Tensor& a,
                                        std::int64_t batch, std::int64_t epoch, bool refitted, std::int64_t cost) {
    torch::Tensor& theta = s.theta;
    const auto th = theta.detach();
    StepDirections dir(ctx, s.t, q, false);
    // Evaluation 2c: theta + sigma u_c; 2c + 1: theta - sigma u_c (antithetic pairs).
    auto point = [&](std::int64_t e) {
      const std::int64_t c = e / 2;
      return ctx.noise(e % 2 == 0 ? th + sigma * dir(c) : th - sigma * dir(c));
    };
    const auto ev = evaluate(ctx, point, s.evaluations, x, a);  // only the 2q losses cross the network
    s.r.queries += cost;
    // Every rank rebuilds the estimate from the shared losses.
    const auto grad = nes_gradient(ev.loss, dir.all(), sigma, p.zo.shaping);
    double loss_mean = 0.0, loss_min = std::numeric_limits<double>::infinity(), accuracy = 0.0;
    std::int64_t finite = 0;
    for (std::size_t e = 0; e < ev.loss.size(); ++e) {
      if (std::isfinite(ev.loss[e])) {
        loss_mean += ev.loss[e];
        ++finite;
      }
      loss_min = std::min(loss_min, ev.loss[e]);
      accuracy += ev.accuracy[e] / static_cast<double>(ev.loss.size());
    }
    if (finite == 0)
      throw NumericError("nes: every candidate loss is non-finite at step " + std::to_string(s.t) +
                         " (try a smaller zo.sigma)");
    const auto v = scalars_to_host({torch::isfinite(grad).all(), l2(grad)});
    if (v[0] == 0.0)
      throw NumericError("nes: the gradient estimate is not finite at step " + std::to_string(s.t) +
                         " (a candidate loss is; nes.shaping = \"rank\" is robust to that)");
    update_theta(ctx, theta, s.adam, grad);
    s.r.trace.add("step", static_cast<double>(s.t));
    s.r.trace.add("batch", static_cast<double>(batch));
    s.r.trace.add("epoch", static_cast<double>(epoch));
    s.r.trace.add("loss", loss_mean / static_cast<double>(finite));  // the Gaussian-smoothed loss at theta
    s.r.trace.add("loss_min", loss_min);
    s.r.trace.add("sa_accuracy", accuracy);
    trace_step_end(ctx, s, refitted, v[1]);
  });
}

std::int64_t images_per_iteration(std::int64_t evaluations, std::int64_t batch) { return evaluations * batch; }

double zeroth_order_loss(const EditProblem& p, fm::EmbeddingApi& api, comm::Communicator& group,
                         const torch::Tensor& x, const torch::Tensor& a, const torch::Tensor& eps) {
  ZoContext ctx(p, api, group);
  return evaluate(ctx, [&](std::int64_t) { return eps; }, 1, x, a).loss[0];
}

EditResult edit_gezo(const EditProblem& p, fm::EmbeddingApi& api, comm::Communicator& group) {
  ZoContext ctx(p, api, group);
  const auto& g = p.zo;
  const std::int64_t candidates = g.candidates;
  const float m = static_cast<float>(g.momentum);
  auto theta = ctx.zero_theta();  // the coefficients (pixel basis: eps itself); the FM sees ctx.noise(theta)
  auto velocity = ctx.zero_theta();
  std::vector<torch::Tensor> checkpoints;
  double sigma = g.sigma;
  EditResult r;
  const auto start = Clock::now();
  std::int64_t t = 0;
  for_each_batch(p, [&](const torch::Tensor& x, const torch::Tensor& a, std::int64_t batch, std::int64_t epoch) {
    bool refitted = false;
    if (!begin_batch(ctx, batch, theta, r, refitted)) return false;
    bool have_current = false;  // loss at eps on this batch known?
    double current = 0.0, current_accuracy = 0.0;  // loss and g's accuracy at eps on this batch
    for (std::int64_t local = 0; local < g.local_epochs; ++local) {
      // Evaluations: [eps (first local iteration only)] + for each c: look + delta_c, look - delta_c.
      const std::int64_t offset = have_current ? 0 : 1;
      const std::int64_t evaluations = 2 * candidates + offset;
      const std::int64_t cost = images_per_iteration(evaluations, x.size(0));
      if (over_budget(g, r.queries, cost, r.status)) return false;
      const auto look = theta + m * velocity;  // momentum look-ahead
      StepDirections delta(ctx, t, candidates, false, sigma);  // delta_c = sigma u_c
      // Every candidate is projected onto the noise budget before it is evaluated, so the
      // accepted point is a measured point inside the budget.
      auto candidate = [&](std::int64_t e) -> torch::Tensor {  // theta of evaluation e
        if (e < offset) return theta;
        const std::int64_t c = (e - offset) / 2;
        return ctx.basis.project((e - offset) % 2 == 0 ? look + delta(c) : look - delta(c), p.options);
      };
      auto point = [&](std::int64_t e) { return ctx.noise(candidate(e)); };
      const auto ev = evaluate(ctx, point, evaluations, x, a);
      r.queries += cost;
      if (!have_current) {
        current = ev.loss[0];
        current_accuracy = ev.accuracy[0];
        have_current = true;
        check_finite(current, "gezo", t);
      }
      // argmin over all 2C candidates; ties go to the lower index (+ before -, lower c first).
      std::int64_t best = offset;
      double best_plus = std::numeric_limits<double>::infinity(), best_minus = best_plus;
      for (std::int64_t e = offset; e < evaluations; ++e) {
        const double l = ev.loss[static_cast<std::size_t>(e)];
        if (l < ev.loss[static_cast<std::size_t>(best)]) best = e;
        double& side = (e - offset) % 2 == 0 ? best_plus : best_minus;
        side = std::min(side, l);
      }
      const double loss_before = current, accuracy_before = current_accuracy;
      const bool accepted = ev.loss[static_cast<std::size_t>(best)] < current;
      const std::int64_t chosen = (best - offset) / 2;
      const int sign = (best - offset) % 2 == 0 ? 1 : -1;
      if (accepted) {
        const auto d = sign > 0 ? delta(chosen) : -delta(chosen);
        velocity = m * velocity + d;
        theta = candidate(best);  // = look + d: exactly the point whose loss was measured
        current = ev.loss[static_cast<std::size_t>(best)];
        current_accuracy = ev.accuracy[static_cast<std::size_t>(best)];
        sigma = std::min(sigma * g.sigma_growth, g.sigma);  // growth 1: unchanged (the paper's)
      } else {
        sigma = std::max(sigma * g.sigma_decay, g.sigma_min);
        if (g.on_reject == "decay") velocity = m * velocity;  // the look-ahead returns towards theta
      }
      r.trace.add("step", static_cast<double>(t));
      r.trace.add("batch", static_cast<double>(batch));
      r.trace.add("epoch", static_cast<double>(epoch));
      r.trace.add("local", static_cast<double>(local));
      r.trace.add("loss", loss_before);
      r.trace.add("loss_after", current);
      r.trace.add("best_plus", best_plus);
      r.trace.add("best_minus", best_minus);
      r.trace.add("accepted", accepted ? 1.0 : 0.0);
      r.trace.add("sign", accepted ? sign : 0.0);
      r.trace.add("candidate", accepted ? static_cast<double>(chosen) : -1.0);
      r.trace.add("sigma", sigma);
      const auto norms = scalars_to_host({l2(velocity), l2(ctx.noise(theta))});  // the trace's: one copy
      r.trace.add("velocity_norm", norms[0]);
      r.trace.add("noise_l2", norms[1]);
      // Like RGE/SPSA's, loss and sa_accuracy are measured at the noise this iteration starts from.
      r.trace.add("sa_accuracy", accuracy_before);
      r.trace.add("sa_accuracy_after", current_accuracy);
      r.trace.add("refit", refitted && local == 0 ? 1.0 : 0.0);
      r.trace.add("queries", static_cast<double>(r.queries));
      r.trace.add("bytes", static_cast<double>(group.bytes_communicated()));
      r.trace.add("wall_s", std::chrono::duration<double>(Clock::now() - start).count());
      ++t;
    }
    return true;
  }, [&](std::int64_t) { checkpoints.push_back(ctx.noise(theta).clone()); });
  return finish(ctx, r, theta, checkpoints);
}

EditResult edit_rge(const EditProblem& p, fm::EmbeddingApi& api, comm::Communicator& group) {
  return edit_two_point(p, api, group, false, "rge");
}

EditResult edit_spsa(const EditProblem& p, fm::EmbeddingApi& api, comm::Communicator& group) {
  return edit_two_point(p, api, group, true, "spsa");
}

}  // namespace dne::editing
