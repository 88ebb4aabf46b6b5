// `dne bench`: what one rank achieves on this machine, as ratios against measured floors.
//
// Measured in one run, so machine noise affects numerator and denominator alike:
//   - GEMM rate: float32 (n x n) @ (n x n) through LibTorch (the BLAS floor);
//   - FM forward: images/s at the configured size and batch, the FM's FLOPs per image, the
//     achieved GFLOP/s and its fraction of the GEMM rate;
//   - white-box DNE: time per optimisation step against a bare forward+backward on the same batch.
// With `--set run.device=cuda` (or auto on a GPU machine) the GEMM floor and the FM run on the
// rank's GPU at `run.precision` (the GEMM in the same precision: bf16 operands for bf16, TF32
// for tf32), the FM through fm::on_device as `dne run` uses it; --zo times the editor with its
// FM there too.
// --estimator measures what limits a zeroth-order search: the cosine between the true gradient
// of the DNE loss (autograd through the in-process FM) and the estimates from q random
// directions, per noise basis (its dimension) and q.
#include <torch/torch.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <unistd.h>
#include <iostream>

#include <mpi.h>

#include "dne/cli/bench_modes.hpp"
#include "dne/cli/commands.hpp"
#include "dne/cli/options.hpp"
#include "dne/core/files.hpp"
#include "dne/comm/mpi_communicator.hpp"
#include "dne/comm/device_choice.hpp"
#include "dne/editing/zeroth_order.hpp"
#include "dne/config/config.hpp"
#include "dne/config/methods.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/random.hpp"
#include "dne/editing/noise_basis.hpp"
#include "dne/editing/noise_editor.hpp"
#include "dne/editing/objective.hpp"
#include "dne/experiment/component_options.hpp"
#include "dne/experiment/experiment.hpp"
#include "dne/experiment/method_registry.hpp"
#include "dne/run/device_agreement.hpp"
#include "dne/fm/device_model.hpp"
#include "dne/fm/foundation_model.hpp"
#include "dne/pretrain/trainer.hpp"
#include "dne/probe/linear_probe.hpp"

namespace po = boost::program_options;

namespace dne::cli {
namespace {

using Clock = std::chrono::steady_clock;

/// The FM of `c` where `device` puts this rank: in process on the CPU, or on its GPU at
/// run.precision (fm::on_device, as dne run does).
std::shared_ptr<fm::DifferentiableModel> bench_model(const config::ExperimentConfig& c, const comm::DeviceChoice& device) {
  auto model = fm::make_model(c.fm, c.data.image_size, 0);
  if (!device.cuda()) return model;
  return fm::on_device(model, device.torch_device(), c.run.precision);
}

/// Zeroth-order mode: every rank of the job forms one group and runs `steps` batches of the
/// editor; the floor is the time this rank needs to embed the same images with plain API calls
/// of the same shape, measured right after in the same process.
int bench_zeroth_order(const config::ExperimentConfig& c, const config::RunConfig& run, const comm::DeviceChoice& device,
                       const std::string& method,
                       int steps, int threads, const ProcessInfo& process) {
  if (config::method_info(method).kind != config::MethodKind::kZerothOrder)
    throw ConfigError("dne bench --zo: METHOD must be a zeroth-order method (gezo, rge, spsa, nes), got '" + method + "'");
  // The whole job is one group; --set comm.backend=nccl times the NCCL path (device sums).
  auto group = device.communicator(MPI_COMM_WORLD, run.comm_timeout_s);
  auto model = bench_model(c, device);
  const std::int64_t b = c.dne.batch_size, s = c.data.image_size, n = b * steps;
  torch::manual_seed(1);  // bench inputs only; identical on every rank
  const auto x = torch::rand({n, 1, s, s});
  const auto sa = (torch::arange(n) % 2).to(torch::kFloat32);
  torch::Tensor z;
  {
    torch::NoGradGuard ng;
    z = model->forward(x.slice(0, 0, std::min<std::int64_t>(n, 400)));
  }
  const auto g = probe::LinearProbe::fit(z, sa.slice(0, 0, z.size(0)).to(torch::kInt64), c.probes);
  editing::EditProblem problem{x, sa, &g, c.dne, 0, c.zo, c.comm, c.probes, device.torch_device()};
  problem.options.epochs = 1;
  const auto api_options = experiment::api_options(c, 0);  // the simulated API (api.*), floor included; no budget
  fm::EmbeddingApi api(model, api_options);
  group->barrier();
  auto t = Clock::now();
  editing::ModelAccess access{nullptr, api, *group};  // the API only, as in a black-box run
  const auto result = experiment::method(method).edit(problem, access);
  group->barrier();
  const double edit_s = std::chrono::duration<double>(Clock::now() - t).count();
  // Floor: the same number of B-image API calls on this rank, nothing else.
  const std::int64_t calls = api.images() / std::max<std::int64_t>(1, b);
  fm::EmbeddingApi floor_api(model, api_options);
  const auto xb = x.slice(0, 0, b).to(device.torch_device());  // where the editor's batches are
  device.synchronize();
  t = Clock::now();
  for (std::int64_t i = 0; i < calls; ++i) (void)floor_api.embed(xb);
  device.synchronize();
  double floor_s = std::chrono::duration<double>(Clock::now() - t).count();
  double worst_floor = floor_s;  // the slowest rank bounds the step
  MPI_Allreduce(&floor_s, &worst_floor, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (process.rank == 0) {
    const double per_step = edit_s / steps;
    std::printf("dne bench --zo %s on %s (%s): %d rank(s) x %d Torch thread(s), batch %lld, C=%lld, R=%lld, split=%s, mode=%s, "
                "basis=%s, api.latency_ms=%g\n",
                method.c_str(), device.description().c_str(), c.run.precision.c_str(), process.world_size, threads,
                static_cast<long long>(b),
                static_cast<long long>(c.zo.candidates), static_cast<long long>(c.zo.local_epochs),
                c.comm.split.c_str(), c.comm.mode.c_str(), c.dne.noise_basis.c_str(), c.api.latency_ms);
    std::printf("%-46s %14s\n", "measurement", "value");
    std::printf("%-46s %14lld\n", "images embedded per step (whole group)", static_cast<long long>(result.queries / steps));
    std::printf("%-46s %14.1f\n", "time per step [ms]", per_step * 1e3);
    std::printf("%-46s %14.1f\n", "floor: API forward of rank's share [ms/step]", worst_floor / steps * 1e3);
    std::printf("%-46s %13.1f%%\n", "overhead over the floor", (edit_s / worst_floor - 1.0) * 100.0);
    std::printf("%-46s %14.1f\n", "group throughput [images/s]", static_cast<double>(result.queries) / edit_s);
    std::printf("%-46s %14.3f\n", "wall time per query [ms]", edit_s / static_cast<double>(result.queries) * 1e3);
    std::printf("%-46s %14.0f\n", "bytes communicated per step (rank 0)", static_cast<double>(group->bytes_communicated()) / steps);
  }
  return 0;
}

/// Estimator mode (rank 0 only): on one batch of dne.batch_size training images of the config's
/// data, at theta = 0, with g fitted on the clean training embeddings, the true gradient of the
/// DNE loss with respect to theta (autograd) against the two-point estimate (RGE: the loss
/// differences) and NES's (centred ranks) from q antithetic Gaussian directions of scale
/// zo.sigma, for each basis of `bases` ("pixel", "lowres:K", "dct:K", comma-separated). `pairs`
/// directions are drawn once per basis (stream (seed, kPerturbation, 0, c)); every q divides
/// them into pairs / q disjoint sets and the table gives the mean cosine over those sets.
int bench_estimator(const config::ExperimentConfig& c, const std::string& bases, int pairs, const ProcessInfo& process) {
  if (process.rank != 0) return 0;
  // Every basis is parsed and built (so checked) before the data and the model are loaded.
  std::vector<std::pair<std::string, std::int64_t>> chosen;  // (kind, k); a bare kind takes dne.noise_dim
  for (std::size_t begin = 0; begin <= bases.size();) {
    const auto end = std::min(bases.find(',', begin), bases.size());
    const auto token = bases.substr(begin, end - begin);
    const auto colon = token.find(':');
    std::int64_t k = c.dne.noise_dim;
    if (colon != std::string::npos) {
      const auto digits = token.substr(colon + 1);
      std::size_t used = 0;
      try {
        k = std::stoll(digits, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (digits.empty() || used != digits.size())
        throw ConfigError("--bases: '" + token + "' is not KIND or KIND:K with a whole number K");
    }
    chosen.emplace_back(token.substr(0, colon), k);
    (void)editing::NoiseBasis(chosen.back().first, k, c.data.image_size, c.data.image_size);  // ConfigError if bad
    begin = end + 1;
  }
  if (pairs > (1 << 20)) throw ConfigError("--pairs: at most 1048576 directions");
  const auto seed = static_cast<std::uint64_t>(c.sweep.seed);
  const auto dataset = experiment::load_dataset(c, "");
  const auto x_all = experiment::to_tensor(dataset.train);  // (N, 1, H, W)
  const auto a_all = torch::tensor(std::vector<std::int64_t>(dataset.train.sa.begin(), dataset.train.sa.end()));
  auto model = fm::make_model(c.fm, c.data.image_size, seed);
  torch::Tensor z;
  {
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> parts;
    for (std::int64_t b = 0; b < x_all.size(0); b += c.fm.batch_size)
      parts.push_back(model->forward(x_all.slice(0, b, std::min(x_all.size(0), b + c.fm.batch_size))));
    z = torch::cat(parts);
  }
  const auto g = probe::LinearProbe::fit(z, a_all, c.probes);
  const std::int64_t batch = std::min<std::int64_t>(c.dne.batch_size, x_all.size(0));
  const auto x = x_all.slice(0, 0, batch);
  const auto a = a_all.slice(0, 0, batch).to(torch::kFloat32);
  const std::int64_t h = x.size(2), w = x.size(3);
  const auto& o = c.dne;
  const double sigma = c.zo.sigma;
  std::printf("dne bench --estimator: %s, batch %lld, objective %s, sigma %g, %d directions per basis, theta = 0\n",
              model->describe().c_str(), static_cast<long long>(batch), o.objective.c_str(), sigma, pairs);
  std::printf("%-10s %8s %6s %14s %14s %14s\n", "basis", "dim", "q", "cos RGE", "cos NES", "sqrt(q/(q+dim))");
  for (const auto& [kind, k] : chosen) {
    const editing::NoiseBasis basis(kind, k, h, w);  // a bad kind or k: ConfigError
    const auto loss_at = [&](const torch::Tensor& theta) {  // the DNE loss on the batch at theta
      const auto eps = basis.noise(theta, o);
      return editing::dne_objective(g.logits(model->forward(editing::add_noise(x, eps, o))), a, eps, o).loss;
    };
    auto theta = torch::zeros(basis.shape(), torch::TensorOptions().requires_grad(true));
    const auto truth = torch::autograd::grad({loss_at(theta)}, {theta})[0].flatten();
    std::vector<torch::Tensor> dirs;
    std::vector<double> losses;
    {
      torch::NoGradGuard ng;
      const auto th = theta.detach();
      for (int k = 0; k < pairs; ++k) {
        std::vector<float> v(static_cast<std::size_t>(basis.size()));
        CounterStream s(seed, StreamPurpose::kPerturbation, 0, static_cast<std::uint32_t>(k));
        s.fill_normal(v.data(), v.size());
        dirs.push_back(torch::from_blob(v.data(), basis.shape(), torch::kFloat32).clone());
        losses.push_back(loss_at(th + sigma * dirs.back()).item<double>());
        losses.push_back(loss_at(th - sigma * dirs.back()).item<double>());
      }
    }
    const auto cosine = [&](const torch::Tensor& e) {
      return (e.flatten() * truth).sum().item<double>() / (e.norm().item<double>() * truth.norm().item<double>() + 1e-30);
    };
    for (int q = 4; q <= pairs; q *= 4) {
      double rge = 0.0, nes = 0.0;
      const int sets = pairs / q;
      for (int s = 0; s < sets; ++s) {
        const std::vector<torch::Tensor> d(dirs.begin() + s * q, dirs.begin() + (s + 1) * q);
        const std::vector<double> l(losses.begin() + 2 * s * q, losses.begin() + 2 * (s + 1) * q);
        rge += cosine(editing::nes_gradient(l, d, sigma, "none")) / sets;
        nes += cosine(editing::nes_gradient(l, d, sigma, "rank")) / sets;
      }
      const auto name = basis.is_pixel() ? kind : kind + " " + std::to_string(k);
      std::printf("%-10s %8lld %6d %14.3f %14.3f %14.3f\n", name.c_str(), static_cast<long long>(basis.size()), q, rge, nes,
                  std::sqrt(static_cast<double>(q) / static_cast<double>(q + basis.size())));  // E cos for a random-direction estimate
    }
  }
  return 0;
}

/// Pretraining mode: every rank of the job runs `steps` MAE steps of the configured ViT on
/// random images (no file is kept); rank 0 prints throughput and where a step's time goes.
int bench_pretraining(config::ExperimentConfig c, int steps, int threads, const ProcessInfo& process) {
  c.fm.kind = "vit";
  c.pretrain.steps = steps;
  c.pretrain.warmup_steps = 0;
  c.pretrain.checkpoint_every = 0;
  auto group = comm::make_mpi_communicator(MPI_COMM_WORLD);
  long long tag = process.rank == 0 ? static_cast<long long>(::getpid()) : 0;
  MPI_Bcast(&tag, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
  const auto dir = std::filesystem::temp_directory_path() / ("dne-bench-pretrain-" + std::to_string(tag));
  if (process.rank == 0) std::filesystem::create_directories(dir);
  group->barrier();
  const std::int64_t s = c.data.image_size;
  torch::manual_seed(1);  // bench inputs only; identical on every rank
  const auto images = torch::rand({std::max<std::int64_t>(c.pretrain.batch_size, 256), 1, s, s});
  pretrain::PretrainIo io;
  io.out_path = (dir / "fm.h5").string();
  io.data_description = "bench: random images";
  const auto r = pretrain::run_pretraining(c, images, *group, io);
  group->barrier();
  if (process.rank == 0) remove_tree(dir.string());  // not std::filesystem::remove_all (core/files.hpp)
  if (process.rank != 0) return 0;
  const double run_s = r.compute_s + r.exchange_s + r.update_s;
  std::printf("dne bench --pretrain: %d rank(s) x %d Torch thread(s), batch %lld in %lld micro-batches, %d steps, "
              "ViT width %lld depth %lld at %lldx%lld\n",
              process.world_size, threads, static_cast<long long>(c.pretrain.batch_size),
              static_cast<long long>(c.pretrain.micro_batches), steps, static_cast<long long>(c.fm.embed_dim),
              static_cast<long long>(c.fm.depth), static_cast<long long>(s), static_cast<long long>(s));
  std::printf("%-46s %14s\n", "measurement", "value");
  std::printf("%-46s %14.1f\n", "pretraining throughput [images/s]", r.images_per_s);
  std::printf("%-46s %14.1f\n", "time per step [ms]", run_s / steps * 1e3);
  std::printf("%-46s %13.1f%%\n", "rank 0: forward+backward of its micro-batches", 100.0 * r.compute_s / run_s);
  std::printf("%-46s %13.1f%%\n", "rank 0: all-gather of micro-batch gradients", 100.0 * r.exchange_s / run_s);
  std::printf("%-46s %13.1f%%\n", "rank 0: ordered sum + AdamW update", 100.0 * r.update_s / run_s);
  std::printf("%-46s %14.0f\n", "bytes all-gathered per step (rank 0 payload)", static_cast<double>(r.bytes_per_step));
  return 0;
}

/// Default mode (rank 0): the GEMM floor, the FM's forward rate against it, and a white-box DNE
/// step against a bare forward+backward on the same batch.
int bench_fm(const config::ExperimentConfig& c, const comm::DeviceChoice& device, int threads, int repeats) {
  torch::NoGradGuard outer_no_grad;
  // 1. GEMM floor, where and how the FM runs: on the GPU in its precision (bf16 operands for
  // bf16; TF32 tensor cores for tf32), synchronised so that the time is the kernel's.
  auto model = bench_model(c, device);  // placed first: it sets the TF32 switches of its precision
  const bool gpu = device.cuda();
  const std::int64_t n = gpu ? 8192 : 1024;
  const auto operands = torch::TensorOptions()
                            .device(device.torch_device())
                            .dtype(gpu && c.run.precision == "bf16" ? torch::kBFloat16 : torch::kFloat32);
  const auto a = torch::randn({n, n}, operands), b = torch::randn({n, n}, operands);
  const double gemm_s = median_seconds(repeats, [&] {
    (void)torch::mm(a, b);
    device.synchronize();
  });
  const double gemm_gflops = 2.0 * n * n * n / gemm_s / 1e9;

  // 2. FM forward on a batch already where the model runs (as the editors hand it over).
  const auto on = torch::TensorOptions().device(device.torch_device());
  const std::int64_t batch = c.fm.batch_size, s = c.data.image_size;
  const auto images = torch::rand({batch, 1, s, s}, on);
  const double fwd_s = median_seconds(repeats, [&] {
    (void)model->forward(images);
    device.synchronize();
  });
  const double images_per_s = static_cast<double>(batch) / fwd_s;
  const double fm_gflops = model->flops_per_image() * images_per_s / 1e9;

  // 3. White-box step vs forward+backward floor on a DNE batch.
  const std::int64_t db = c.dne.batch_size;
  const auto x = torch::rand({db, 1, s, s});  // host, as an EditProblem holds its images
  const auto xd = x.to(device.torch_device());
  const auto sa = (torch::rand({db}) > 0.5).to(torch::kFloat32);
  torch::Tensor z_fit;
  {
    z_fit = model->forward(torch::rand({4 * db, 1, s, s}));
  }
  const auto g = probe::LinearProbe::fit(z_fit, (torch::rand({4 * db}) > 0.5).to(torch::kInt64), c.probes);
  double fwd_db_s, fb_s, step_s;
  {
    torch::NoGradGuard ng;
    fwd_db_s = median_seconds(repeats, [&] {
      (void)model->forward(xd);
      device.synchronize();
    });
  }
  {
    torch::AutoGradMode enable(true);
    auto noise = torch::zeros({s, s}, on.requires_grad(true));
    fb_s = median_seconds(repeats, [&] {
      auto out = model->forward(xd + noise).sum();
      out.backward();
      device.synchronize();
    });
    editing::EditProblem problem{x, sa, &g, c.dne, 0};
    problem.device = device.torch_device();
    problem.options.epochs = 1;
    problem.options.batch_size = db;  // exactly one step per call
    const auto alone = comm::make_self_communicator();
    step_s = median_seconds(repeats, [&] { (void)editing::edit_whitebox(problem, *model, *alone); });
  }

  std::printf("dne bench on %s: %d Torch thread(s), %d repeats (median), model %s\n", device.description().c_str(),
              threads, repeats, model->describe().c_str());
  std::printf("%-44s %14s %14s\n", "measurement", "value", "ratio");
  const std::string gemm_label = "GEMM " + std::string(gpu ? c.run.precision : "float32") + " " + std::to_string(n) + "^3 [GFLOP/s]";
  std::printf("%-44s %14.1f %14s\n", gemm_label.c_str(), gemm_gflops, "1.00 (floor)");
  std::printf("%-44s %14.2f %14s\n", "FM FLOPs per image [MFLOP]", model->flops_per_image() / 1e6, "");
  std::printf("%-44s %14.1f %14s\n", "FM forward [images/s]", images_per_s, "");
  std::printf("%-44s %14.1f %13.2fx\n", "FM forward achieved [GFLOP/s] / GEMM", fm_gflops, fm_gflops / gemm_gflops);
  std::printf("%-44s %14.2f %14s\n", "FM ideal at GEMM rate [images/s]", gemm_gflops * 1e9 / model->flops_per_image(), "");
  std::printf("%-44s %14.2f %14s\n", "DNE batch forward [ms]", fwd_db_s * 1e3, "1.00");
  std::printf("%-44s %14.2f %13.2fx\n", "DNE batch forward+backward [ms]", fb_s * 1e3, fb_s / fwd_db_s);
  std::printf("%-44s %14.2f %13.2fx\n", "white-box DNE step [ms] / forward+backward", step_s * 1e3, step_s / fb_s);
  return 0;
}

}  // namespace

int command_bench(const std::vector<std::string>& args, const ProcessInfo& process) {
  po::options_description options("dne bench: FM throughput, GEMM floor and DNE step cost\n"
                                  "usage: dne bench [--threads N] [--repeats R] [--set key=value ...]");
  options.add_options()("help,h", "show this help")(
      "threads,t", po::value<long>()->default_value(0), "Torch threads (0 = cores / ranks on node)")(
      "repeats,r", po::value<int>()->default_value(5), "timed repetitions (median reported)")(
      "set,s", po::value<std::vector<std::string>>()->composing(), "config override (fm.*, data.image_size, dne.batch_size, zo.*, gezo.*, comm.*)")(
      "zo", po::value<std::string>(), "zeroth-order mode: time METHOD (gezo|rge|spsa|nes) on all ranks of the job")(
      "config", po::value<std::string>(), "start from this config file (the first experiment of its sweep) before --set")(
      "estimator", "estimator mode: cosine of zeroth-order gradient estimates with the true gradient, per noise "
                   "basis and number of directions q (the config's data, FM, objective, zo.sigma, dne.noise_dim)")(
      "pairs", po::value<int>()->default_value(256), "estimator mode: directions drawn per basis (q = 4, 16, 64, ... up to it)")(
      "bases", po::value<std::string>()->default_value("pixel,lowres:8,dct:8,dct:16"),
      "estimator mode: the noise bases, comma-separated KIND or KIND:K (pixel, lowres:K, dct:K)")(
      "steps", po::value<int>()->default_value(3), "zeroth-order and pretraining modes: steps to time")(
      "pretrain", "pretraining mode: MAE steps of the configured ViT on all ranks of the job (pretrain.*, fm.*)")(
      "data", po::value<std::string>(), "data mode: decode the images of manifest CSV (data.image_size, data.resize): "
                                         "images/s against reading the bytes, threads, the image cache, memory, "
                                         "embedding from the cache (fm.*)");
  const auto vm = parse_args(args, options);
  if (vm.count("help")) {
    if (process.rank == 0) std::cout << options << "\n";
    return 0;
  }
  config::ConfigSource source;
  source.origin = "defaults";
  if (vm.count("config")) source = config::parse_file(vm["config"].as<std::string>());
  // The zeroth-order keys apply only to zeroth-order methods: name the method before expanding.
  if (vm.count("zo")) config::apply_override(source, "dne.method=" + vm["zo"].as<std::string>());
  if (vm.count("data")) {  // the manifest keys (data.resize, data.sa_column, ...) need the manifest source
    config::apply_override(source, "data.source=manifest");
    config::set_value(source, "data.manifest", vm["data"].as<std::string>());
  }
  if (vm.count("set"))
    for (const auto& s : vm["set"].as<std::vector<std::string>>()) config::apply_override(source, s);
  const auto c = config::expand(source).front();
  run::say_deprecated_keys(source, process);
  const auto run = config::read_run_config(source);
  const auto device = run::agreed_device_choice(run, {c}, process);  // run.device, run.precision (collective)
  const int threads = run::choose_threads(vm["threads"].as<long>(), process);
  const int repeats = std::max(1, vm["repeats"].as<int>());
  torch::set_num_threads(threads);
  if (vm.count("data")) return bench_decoding(c, vm["data"].as<std::string>(), repeats, process);
  if (vm.count("pretrain")) return bench_pretraining(c, std::max(1, vm["steps"].as<int>()), threads, process);
  if (vm.count("estimator"))
    return bench_estimator(c, vm["bases"].as<std::string>(), std::max(4, vm["pairs"].as<int>()), process);
  if (vm.count("zo")) return bench_zeroth_order(c, run, device, vm["zo"].as<std::string>(), vm["steps"].as<int>(), threads, process);
  if (process.rank != 0) return 0;
  return bench_fm(c, device, threads, repeats);
}

}  // namespace dne::cli
