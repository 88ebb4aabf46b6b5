// Counter-based random streams (Philox4x32-10).
//
// Every random draw in dne-sweep comes from a stream keyed by (run seed, purpose, step, index),
// never from a global generator. Two streams with the same key produce the same numbers on any
// rank, in any order, so work can be sharded across ranks without changing results. Normal
// variates use Box-Muller on two uniforms; the sequence is fixed by this file, not by Torch or
// the C++ standard library, so results are stable across library versions.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace dne {

/// What a stream is used for; part of the key so that streams of different purposes never collide.
enum class StreamPurpose : std::uint32_t {
  kPhantom = 1,        // synthetic data: per-image geometry and noise
  kModelInit = 2,      // foundation model weights
  kProbeInit = 3,      // probe weights / shuffling
  kNoiseInit = 4,      // initial DNE noise
  kBatchOrder = 5,     // mini-batch shuffling
  kPerturbation = 6,   // zeroth-order perturbations
  kSplit = 7,          // dataset splits
  kMasking = 8,        // MAE pretraining: which patches each image hides (step, image)
  kPretrainOrder = 9,  // MAE pretraining: image order of each epoch
  kLatentNoise = 10,   // adversarial VAE: reparameterisation noise (step = global batch, index = 0)
  kPhantomAge = 11,    // synthetic data: each image's age (step = split, index = image), apart from kPhantom
  kTest = 100,         // tests only
};

/// Philox4x32-10 block function: 128-bit counter, 64-bit key -> 128 random bits.
std::array<std::uint32_t, 4> philox4x32(std::array<std::uint32_t, 4> counter,
                                        std::array<std::uint32_t, 2> key);

/// A sequential reader over the Philox blocks of one (seed, purpose, step, index) key.
class CounterStream {
 public:
  CounterStream(std::uint64_t seed, StreamPurpose purpose, std::uint32_t step, std::uint32_t index);

  std::uint32_t next_u32();
  /// Uniform in [0, 1) with 53 random bits.
  double uniform();
  /// Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Standard normal (Box-Muller, both outputs used).
  double normal();
  /// Uniform integer in [0, n), n > 0 (rejection sampling, no modulo bias).
  std::uint64_t below(std::uint64_t n);
  /// Bernoulli(p).
  bool bernoulli(double p) { return uniform() < p; }

  /// Fill `out` with N(0, stddev^2) floats.
  void fill_normal(float* out, std::size_t n, float stddev = 1.0f);

 private:
  void refill();

  std::array<std::uint32_t, 2> key_;
  std::array<std::uint32_t, 4> counter_;
  std::array<std::uint32_t, 4> block_{};
  int used_ = 4;
  bool has_spare_normal_ = false;
  double spare_normal_ = 0.0;
};

/// Deterministic Fisher-Yates permutation of [0, n) from a stream.
std::vector<std::int64_t> random_permutation(std::int64_t n, CounterStream& stream);

}  // namespace dne
