// ERM, the random control and white-box DNE (see noise_editor.hpp).
#include "dne/editing/noise_editor.hpp"

#include <chrono>
#include <cmath>

#include "dne/comm/group_agreement.hpp"
#include "dne/comm/tensor_sum.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/random.hpp"
#include "dne/core/stop_signal.hpp"
#include "dne/editing/noise_basis.hpp"
#include "dne/editing/objective.hpp"

namespace dne::editing {

EditResult edit_none(const EditProblem& problem) {
  EditResult r;
  r.noise = torch::zeros({problem.images.height(), problem.images.width()});
  return r;
}

EditResult edit_random(const EditProblem& problem) {
  const std::int64_t h = problem.images.height(), w = problem.images.width();
  std::vector<float> values(static_cast<std::size_t>(h * w));
  CounterStream stream(problem.seed, StreamPurpose::kNoiseInit, 0, 0);
  stream.fill_normal(values.data(), values.size());
  double norm = 0.0;
  for (float v : values) norm += static_cast<double>(v) * v;
  norm = std::sqrt(norm);
  const auto scale = static_cast<float>(problem.options.random_l2 / std::max(norm, 1e-12));
  for (float& v : values) v *= scale;
  EditResult r;
  r.noise = project_noise(torch::from_blob(values.data(), {h, w}, torch::kFloat32).clone(), problem.options);
  return r;
}

void ProgressReporter::at(const torch::Tensor& eps, std::int64_t queries) {
  if (!enabled() || queries < next_) return;
  problem_.progress(eps, queries);
  last_ = queries;
  next_ = (queries / problem_.options.eval_every + 1) * problem_.options.eval_every;
}

void ProgressReporter::finish(const torch::Tensor& eps, std::int64_t queries) {
  if (!enabled() || queries == last_) return;
  problem_.progress(eps, queries);
  last_ = queries;
}

torch::Tensor to_problem_device(const EditProblem& problem, const torch::Tensor& host) {
  if (problem.device.is_cpu()) return host;
  return host.pin_memory().to(problem.device, /*non_blocking=*/true);
}

std::vector<double> values_to_host(const torch::Tensor& t) {
  const auto host = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  return std::vector<double>(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
}

std::vector<double> scalars_to_host(const std::vector<torch::Tensor>& scalars) {
  if (scalars.empty()) return {};
  std::vector<torch::Tensor> values;
  values.reserve(scalars.size());
  for (const auto& v : scalars) values.push_back(v.detach().reshape({}).to(torch::kFloat64));
  return values_to_host(torch::stack(values));
}

void finish_on_host(EditResult& r, const torch::Tensor& noise, const std::vector<torch::Tensor>& checkpoints) {
  const auto host = [](const torch::Tensor& t) { return t.is_cpu() ? t.detach().clone() : t.detach().to(torch::kCPU); };
  r.noise = host(noise);
  r.checkpoints.clear();
  for (const auto& c : checkpoints) r.checkpoints.push_back(host(c));
}

namespace {

/// Rows `idx` of `host` on the problem's device: on the GPU gathered straight into page-locked
/// memory (one host copy, not two) and uploaded asynchronously.
torch::Tensor rows_on_problem_device(const EditProblem& p, const torch::Tensor& host, const torch::Tensor& idx) {
  if (p.device.is_cpu()) return host.index_select(0, idx);
  auto sizes = host.sizes().vec();
  sizes[0] = idx.size(0);
  auto pinned = torch::empty(sizes, host.options().pinned_memory(true));
  torch::index_select_out(pinned, host, 0, idx);
  return pinned.to(p.device, /*non_blocking=*/true);
}

/// The same for images (B, 1, H, W), wherever they are held.
torch::Tensor rows_on_problem_device(const EditProblem& p, const ImageRows& host, const torch::Tensor& idx) {
  if (p.device.is_cpu()) return host.select(idx);
  auto pinned = torch::empty({idx.size(0), 1, host.height(), host.width()}, torch::TensorOptions(torch::kFloat32).pinned_memory(true));
  return host.select(idx, pinned).to(p.device, /*non_blocking=*/true);
}

}  // namespace

void for_each_batch(const EditProblem& p, const BatchStep& step, const std::function<void(std::int64_t)>& epoch_end) {
  const std::int64_t n = p.images.size();
  std::int64_t batch_index = 0;
  for (std::int64_t epoch = 0; epoch < p.options.epochs; ++epoch) {
    CounterStream order_stream(p.seed, StreamPurpose::kBatchOrder, static_cast<std::uint32_t>(epoch), 0);
    const auto order = torch::tensor(random_permutation(n, order_stream));
    for (std::int64_t begin = 0; begin < n; begin += p.options.batch_size) {
      const auto idx = order.slice(0, begin, std::min(n, begin + p.options.batch_size));
      if (!step(rows_on_problem_device(p, p.images, idx), rows_on_problem_device(p, p.sa, idx), batch_index++, epoch))
        return;
    }
    if (epoch_end) epoch_end(epoch);
  }
}

Adversary::Adversary(const EditProblem& problem)
    : problem_(problem), sa_(problem.sa.to(problem.device)), current_(problem.sa_probe->to(problem.device)) {}

bool Adversary::due(std::int64_t batch) const {
  return problem_.options.adversary == "refit" && batch > 0 && batch % problem_.options.refit_every == 0;
}

void Adversary::refit(const torch::Tensor& eps, const Embed& embed, int window, comm::Communicator& group) {
  torch::NoGradGuard no_grad;
  const auto z = comm::embed_over_group(  // (N, D)
      problem_.images.size(), problem_.options.batch_size, current_.weight().size(0), window,
      [&](std::int64_t begin, std::int64_t end) {
        return add_noise(to_problem_device(problem_, problem_.images.slice(begin, end)), eps, problem_.options);
      },
      embed, group, problem_.device);
  current_ = probe::LinearProbe::fit(z, sa_, problem_.probes);
  ++refits_;
}

EditResult edit_whitebox(const EditProblem& problem, fm::DifferentiableModel& model, comm::Communicator& group) {
  const auto& opt = problem.options;
  const auto basis = NoiseBasis::from_options(opt, problem.images.height(), problem.images.width(), problem.device);
  // The coefficients (pixel basis: the noise (H, W) itself); the FM sees basis.noise(theta).
  auto theta = torch::zeros(basis.shape(), torch::TensorOptions().device(problem.device).requires_grad(true));
  const auto noise_now = [&] { return basis.noise(theta.detach(), opt); };
  torch::optim::Adam adam({theta}, torch::optim::AdamOptions(opt.lr));
  Adversary adversary(problem);
  ProgressReporter progress(problem);
  EditResult r;
  std::vector<torch::Tensor> checkpoints;
  const auto start = std::chrono::steady_clock::now();
  std::int64_t images_seen = 0;
  // x (B, 1, H, W), a (B,), on the problem's device
  for_each_batch(problem, [&](const torch::Tensor& x, const torch::Tensor& a, std::int64_t step, std::int64_t epoch) {
    comm::stop_point(group, "at whitebox step " + std::to_string(step));
    progress.at(noise_now(), images_seen);
    const bool refit = adversary.due(step);
    if (refit) {
      adversary.refit(noise_now(), [&](const std::vector<torch::Tensor>& b) { return model.embed_each(b); }, 1, group);
      images_seen += adversary.images_per_refit();
    }
    adam.zero_grad();
    const auto noise = basis.noise(theta, opt);  // (H, W), differentiable in theta
    const auto z = model.forward(add_noise(x, noise, opt));  // (B, D)
    const auto logits = adversary.probe().logits(z);  // (B,)
    auto terms = dne_objective(logits, a, noise, opt);
    terms.loss.backward();
    // The step's scalars in one copy: the loss decides (a non-finite loss stops before the update).
    const auto sa_correct = ((logits.detach() > 0).to(torch::kFloat32) == a).to(torch::kFloat32).mean();
    const auto v = scalars_to_host({terms.loss, terms.sa_ce, sa_correct, terms.noise_l2});
    const double loss = v[0];
    if (!std::isfinite(loss))
      throw NumericError("whitebox DNE: loss is " + std::to_string(loss) + " at step " +
                         std::to_string(step) + " (try a smaller dne.lr)");
    adam.step();
    {
      torch::NoGradGuard no_grad;
      theta.copy_(basis.project(theta.detach(), opt));  // the budget holds after every update
    }
    images_seen += x.size(0);
    r.trace.add("step", static_cast<double>(step));
    r.trace.add("epoch", static_cast<double>(epoch));
    r.trace.add("loss", loss);
    r.trace.add("sa_ce", v[1]);
    r.trace.add("sa_accuracy", v[2]);
    r.trace.add("refit", refit ? 1.0 : 0.0);
    r.trace.add("noise_l2", v[3]);
    r.trace.add("images", static_cast<double>(images_seen));
    r.trace.add("wall_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return true;
  }, [&](std::int64_t) { checkpoints.push_back(noise_now().clone()); });
  const auto noise = noise_now();
  progress.finish(noise, images_seen);
  finish_on_host(r, noise, checkpoints);
  r.queries = images_seen;  // passes through the white-box model (forward+backward, and refit forwards)
  return r;
}

}  // namespace dne::editing
