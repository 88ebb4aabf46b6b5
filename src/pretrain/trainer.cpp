// Data-parallel MAE pretraining with deterministic gradient sums and checkpoints (see trainer.hpp).
#include "dne/pretrain/trainer.hpp"

#include <csignal>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "dne/core/build_info.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/hash.hpp"
#include "dne/core/random.hpp"
#include "dne/core/stop_signal.hpp"
#include "dne/fm/fm_file.hpp"
#include "dne/pretrain/adamw.hpp"
#include "dne/pretrain/mae.hpp"
#include "dne/store/result_file.hpp"

namespace dne::pretrain {
namespace {

using Clock = std::chrono::steady_clock;

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string clock_text(double seconds) {
  const auto s = static_cast<long long>(std::llround(std::max(0.0, seconds)));
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << ":" << std::setw(2) << std::setfill('0') << (s / 60) % 60;
  else out << s / 60;
  out << ":" << std::setw(2) << std::setfill('0') << s % 60;
  return out.str();
}

std::vector<float> to_floats(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::vector<std::uint64_t> dims_of(const torch::Tensor& t) { return {t.sizes().begin(), t.sizes().end()}; }

/// What a checkpoint restores.
struct TrainState {
  std::int64_t step = 0;       // optimiser steps done
  std::vector<double> loss;    // one per step done
};

void write_checkpoint(const std::string& path, const std::string& hash, MaskedAutoencoderImpl& mae, AdamW& adam,
                      const std::vector<std::string>& trainable_names, const TrainState& state) {
  store::H5Writer w(path);
  w.attribute("/", "format", std::string("dne-pretrain-checkpoint"));
  w.attribute("/", "pretrain_hash", hash);
  w.attribute("/", "step", state.step);
  w.attribute("/", "adam_steps", adam.steps_taken());
  for (const auto& item : mae.named_parameters()) w.dataset("/model/" + item.key(), to_floats(item.value()), dims_of(item.value()));
  for (std::size_t i = 0; i < trainable_names.size(); ++i) {
    const auto& p = adam.params()[i];
    w.dataset("/adam/m/" + trainable_names[i], to_floats(p.m), dims_of(p.m));
    w.dataset("/adam/v/" + trainable_names[i], to_floats(p.v), dims_of(p.v));
  }
  w.dataset("/loss", state.loss, {state.loss.size()});
  w.commit();
}

/// Restore a checkpoint of the same config into `mae` and `adam`; false (and the reason in `why`)
/// when there is none, it belongs to another config, or it cannot be read.
bool read_checkpoint(const std::string& path, const std::string& hash, MaskedAutoencoderImpl& mae, AdamW& adam,
                     const std::vector<std::string>& trainable_names, TrainState& state, std::string& why) {
  if (!std::filesystem::exists(path)) return false;
  try {
    const store::H5Reader file(path);
    if (file.string_attribute("/", "pretrain_hash") != hash) {
      why = "it belongs to another pretraining config";
      return false;
    }
    // Read everything first; the live model and optimiser change only once all of it is valid,
    // so a checkpoint that fails halfway leaves a fresh start, not a mix.
    std::vector<std::pair<torch::Tensor, std::vector<float>>> staged;
    const auto stage = [&](const std::string& dataset, const torch::Tensor& into) {
      std::vector<std::uint64_t> dims;
      auto values = file.floats(dataset, dims);
      if (std::vector<std::int64_t>(dims.begin(), dims.end()) != into.sizes().vec())
        throw StoreError(dataset + " has the wrong shape");
      staged.emplace_back(into, std::move(values));
    };
    for (auto& item : mae.named_parameters()) stage("/model/" + item.key(), item.value());
    for (std::size_t i = 0; i < trainable_names.size(); ++i) {
      stage("/adam/m/" + trainable_names[i], adam.params()[i].m);
      stage("/adam/v/" + trainable_names[i], adam.params()[i].v);
    }
    const auto step = file.int_attribute("/", "step");
    const auto adam_steps = file.int_attribute("/", "adam_steps");
    std::vector<std::uint64_t> dims;
    auto loss = file.doubles("/loss", dims);
    if (static_cast<std::int64_t>(loss.size()) != step || adam_steps != step)
      throw StoreError("/loss and the step counts do not agree");
    torch::NoGradGuard no_grad;
    for (auto& [into, values] : staged) into.copy_(torch::from_blob(values.data(), into.sizes(), torch::kFloat32));
    state.step = step;
    state.loss = std::move(loss);
    adam.set_steps_taken(adam_steps);
    return true;
  } catch (const Error& e) {
    why = std::string("it cannot be read: ") + e.what();
    return false;
  }
}

}  // namespace

std::string checkpoint_path(const std::string& out_path) { return out_path + ".ckpt"; }

std::string pretrain_hash(const config::ExperimentConfig& c) {
  return hex16(fnv1a64(c.pretrain_text()));
}

PretrainSummary run_pretraining(const config::ExperimentConfig& c, const torch::Tensor& images,
                                comm::Communicator& group, const PretrainIo& io) {
  const auto t0 = Clock::now();
  const auto& o = c.pretrain;
  const auto seed = static_cast<std::uint64_t>(c.sweep.seed);
  const std::string hash = pretrain_hash(c);
  const bool leader = group.rank() == 0;
  const auto say = [&](const std::string& line) {
    if (leader && io.log != nullptr) *io.log << line + "\n" << std::flush;
  };
  PretrainSummary summary;

  // Up to date already? (Every rank reads the same file and so takes the same branch.)
  if (std::filesystem::exists(io.out_path)) {
    try {
      const store::H5Reader existing(io.out_path);
      if (existing.has_attribute("/provenance", "pretrain_hash") &&
          existing.string_attribute("/provenance", "pretrain_hash") == hash) {
        summary.up_to_date = true;
        summary.steps = existing.int_attribute("/provenance", "steps");
        summary.final_loss = existing.double_attribute("/provenance", "final_loss");
        return summary;
      }
    } catch (const Error&) {
    }
    say("[pretrain] " + io.out_path + " exists with another pretraining config; it will be replaced");
  }

  const std::int64_t n = images.size(0);
  if (n < o.batch_size)
    throw ConfigError("pretrain.batch_size = " + std::to_string(o.batch_size) + " exceeds the " + std::to_string(n) +
                      " training images");
  const auto arch = fm::ViTArchitecture::from_config(c.fm, images.size(2));
  DecoderOptions decoder{o.decoder_width, o.decoder_depth, o.decoder_heads};  // MAE's mlp_ratio
  MaskedAutoencoder mae(arch, decoder);
  fm::initialise_vit_weights(*mae, seed, 0, arch.patches_per_side());
  mae->train();

  // Trainable parameters: everything but the fixed sine-cosine position embeddings (as MAE).
  std::vector<std::string> names;
  std::vector<torch::Tensor> params;
  std::vector<bool> decay;
  for (auto& item : mae->named_parameters()) {
    if (ends_with(item.key(), "pos_embed")) {
      item.value().set_requires_grad(false);
      continue;
    }
    names.push_back(item.key());
    params.push_back(item.value());
    decay.push_back(item.value().dim() >= 2 && !ends_with(item.key(), "cls_token") && !ends_with(item.key(), "mask_token"));
  }
  AdamW adam(params, decay);
  std::int64_t total = 0;
  std::vector<std::int64_t> offsets;
  for (const auto& p : params) {
    offsets.push_back(total);
    total += p.numel();
  }

  TrainState state;
  std::string why;
  const std::string ckpt = checkpoint_path(io.out_path);
  if (read_checkpoint(ckpt, hash, *mae, adam, names, state, why)) {
    say("[pretrain] resuming from " + ckpt + " at step " + std::to_string(state.step) + "/" + std::to_string(o.steps));
  } else if (!why.empty()) {
    say("[pretrain] ignoring checkpoint " + ckpt + ": " + why);
  }
  summary.resumed_from = state.step;

  const std::int64_t steps_per_epoch = n / o.batch_size, micro = o.batch_size / o.micro_batches;
  const auto [mb_begin, mb_end] = comm::shard_range(static_cast<std::size_t>(o.micro_batches), group.rank(), group.size());
  const std::int64_t own = static_cast<std::int64_t>(mb_end - mb_begin);
  say("[pretrain] " + std::to_string(n) + " images, " + std::to_string(o.steps) + " steps of " +
      std::to_string(o.batch_size) + " (" + std::to_string(o.micro_batches) + " micro-batches over " +
      std::to_string(group.size()) + " rank(s)), " + std::to_string(total) + " trainable parameters");

  std::vector<std::int64_t> order;
  std::int64_t order_epoch = -1;
  const auto run_start = Clock::now();
  auto last_line = run_start;
  const std::int64_t first_step = state.step;
  for (std::int64_t step = state.step; step < o.steps; ++step) {
    const std::int64_t epoch = step / steps_per_epoch, slot = step % steps_per_epoch;
    if (epoch != order_epoch) {
      CounterStream stream(seed, StreamPurpose::kPretrainOrder, static_cast<std::uint32_t>(epoch), 0);
      order = random_permutation(n, stream);
      order_epoch = epoch;
    }
    // This rank's micro-batches: gradients (flattened, trainable order) and loss shares.
    auto phase = Clock::now();
    std::vector<double> send(static_cast<std::size_t>(own * (total + 1)), 0.0);
    for (std::int64_t m = 0; m < own; ++m) {
      const std::int64_t first = slot * o.batch_size + (static_cast<std::int64_t>(mb_begin) + m) * micro;
      std::vector<std::int64_t> index(order.begin() + first, order.begin() + first + micro);
      std::vector<std::int64_t> visible;
      for (auto i : index) {
        const auto v = visible_patches(seed, static_cast<std::uint32_t>(step), static_cast<std::uint32_t>(i),
                                       arch.num_patches(), o.mask_ratio);
        visible.insert(visible.end(), v.begin(), v.end());
      }
      const auto k = static_cast<std::int64_t>(visible.size()) / micro;
      const auto x = images.index_select(0, torch::tensor(index, torch::kInt64));
      const auto vis = torch::tensor(visible, torch::kInt64).reshape({micro, k});
      for (auto& p : params) p.mutable_grad() = torch::Tensor();
      const auto loss = mae->loss_per_image(x, vis, o.norm_pix_loss).sum() / static_cast<double>(o.batch_size);
      loss.backward();
      double* out = send.data() + m * (total + 1);
      for (std::size_t i = 0; i < params.size(); ++i) {
        const auto& g = params[i].grad();
        if (!g.defined()) continue;
        const auto gc = g.contiguous();
        const float* src = gc.data_ptr<float>();
        for (std::int64_t j = 0; j < gc.numel(); ++j) out[offsets[i] + j] = static_cast<double>(src[j]);
      }
      out[total] = loss.item<double>();
    }
    summary.compute_s += std::chrono::duration<double>(Clock::now() - phase).count();
    phase = Clock::now();
    const auto all = group.allgather(send.data(), send.size());  // micro-batch order (rank blocks)
    summary.exchange_s += std::chrono::duration<double>(Clock::now() - phase).count();
    phase = Clock::now();
    if (static_cast<std::int64_t>(all.size()) != o.micro_batches * (total + 1))
      throw CommError("pretraining: all-gather returned " + std::to_string(all.size()) + " values");
    // Sum the micro-batch gradients in micro-batch order, in float32 (as one rank would).
    std::vector<float> sum(static_cast<std::size_t>(total), 0.0f);
    double step_loss = 0.0;
    for (std::int64_t m = 0; m < o.micro_batches; ++m) {
      const double* g = all.data() + m * (total + 1);
      for (std::int64_t j = 0; j < total; ++j) sum[static_cast<std::size_t>(j)] += static_cast<float>(g[j]);
      step_loss += g[total];
    }
    if (!std::isfinite(step_loss))
      throw NumericError("pretraining loss is not finite at step " + std::to_string(step) + " (lower pretrain.lr?)");
    std::vector<torch::Tensor> grads;
    for (std::size_t i = 0; i < params.size(); ++i)
      grads.push_back(torch::from_blob(sum.data() + offsets[i], params[i].sizes(), torch::kFloat32));
    adam.step(grads, learning_rate(o, step), o.weight_decay);
    summary.update_s += std::chrono::duration<double>(Clock::now() - phase).count();
    summary.bytes_per_step = send.size() * sizeof(double);
    state.loss.push_back(step_loss);
    state.step = step + 1;

    // SIGTERM / SIGINT (core/stop_signal.hpp): every rank learns of a signal any rank received
    // at the same step, the leader checkpoints that step, and all stop together.
    double stop = stop_signal() != 0 ? 1.0 : 0.0;
    group.allreduce_sum(&stop, 1);
    if (stop > 0.0 && state.step < o.steps) {
      if (leader) write_checkpoint(ckpt, hash, *mae, adam, names, state);
      group.barrier();
      const int s = stop_signal() != 0 ? stop_signal() : SIGTERM;  // a peer's signal: stop as it asked
      throw Interrupted(signal_name(s) + " received: pretraining stopped after step " + std::to_string(state.step) + " of " +
                            std::to_string(o.steps) + "; checkpoint " + ckpt +
                            " written (the same command resumes from it)",
                        s);
    }
    const bool checkpoint = o.checkpoint_every > 0 && state.step % o.checkpoint_every == 0 && state.step < o.steps;
    if (checkpoint && leader) write_checkpoint(ckpt, hash, *mae, adam, names, state);
    if (checkpoint && leader && io.kill_after_step == state.step) std::raise(SIGKILL);
    const auto now = Clock::now();
    if (std::chrono::duration<double>(now - last_line).count() >= 5.0 || state.step == o.steps || checkpoint) {
      const double elapsed = std::chrono::duration<double>(now - run_start).count();
      const double done = static_cast<double>(state.step - first_step);
      const double rate = done * static_cast<double>(o.batch_size) / std::max(1e-9, elapsed);
      const double eta = elapsed / std::max(1.0, done) * static_cast<double>(o.steps - state.step);
      std::ostringstream line;
      line << "[pretrain] step " << state.step << "/" << o.steps << "  loss " << std::fixed << std::setprecision(4)
           << step_loss << "  lr " << std::scientific << std::setprecision(2) << learning_rate(o, step) << std::fixed
           << std::setprecision(0) << "  " << rate << " img/s  elapsed " << clock_text(elapsed) << "  ETA "
           << clock_text(eta) << (checkpoint ? "  (checkpoint)" : "");
      say(line.str());
      last_line = now;
    }
  }
  const double run_s = std::chrono::duration<double>(Clock::now() - run_start).count();
  summary.steps = o.steps;
  summary.final_loss = state.loss.empty() ? 0.0 : state.loss.back();
  summary.images_per_s = static_cast<double>((o.steps - first_step) * o.batch_size) / std::max(1e-9, run_s);

  if (leader) {
    fm::FmProvenance prov;
    prov.text["source"] = "dne pretrain";
    prov.text["created"] = store::now_iso8601();
    prov.text["git_commit"] = build_git_commit();
    prov.text["data"] = io.data_description;
    prov.text["pretrain_config"] = c.pretrain_text();
    prov.text["pretrain_hash"] = hash;
    prov.text["method"] = "masked autoencoder (mask ratio " + std::to_string(o.mask_ratio) + ", norm_pix_loss " +
                          (o.norm_pix_loss ? "true" : "false") + ")";
    prov.integers["steps"] = o.steps;
    prov.integers["images_seen"] = o.steps * o.batch_size;
    prov.integers["ranks"] = group.size();
    prov.integers["torch_threads"] = torch::get_num_threads();  // bits are equal across rank counts at equal threads
    prov.reals["final_loss"] = summary.final_loss;
    prov.loss = state.loss;
    fm::write_fm_file(io.out_path, *mae->encoder, prov);
    std::error_code ec;
    std::filesystem::remove(ckpt, ec);
  }
  group.barrier();
  summary.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  return summary;
}

}  // namespace dne::pretrain
