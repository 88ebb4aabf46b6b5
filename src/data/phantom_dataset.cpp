// The phantom's option check, data set and region maps (see phantom.hpp and docs/phantom.md):
// check_options, make_phantom (every split, rendered over a few threads) and phantom_regions
// (where each layer draws its cue, from test images rendered with and without it). One image is
// drawn by phantom.cpp (render_unchecked, phantom_parts.hpp).
#include "dne/data/phantom.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/data/dataset.hpp"
#include "phantom_parts.hpp"

namespace dne::data {
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw ConfigError(message);
}

std::string num(double x) {
  std::string s = std::to_string(x);
  // trim trailing zeros of "1.500000"
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  return s;
}

void require_unit(double x, const char* name) {
  require(std::isfinite(x) && x >= 0.0 && x <= 1.0,
          std::string("data.") + name + " must be in [0, 1], got " + num(x));
}

}  // namespace

void check_options(const PhantomOptions& o) {
  require(o.image_size >= 32 && o.image_size <= 4096,
          "data.image_size must be in [32, 4096], got " + std::to_string(o.image_size));
  require(o.n_train >= 1, "data.n_train must be >= 1, got " + std::to_string(o.n_train));
  require(o.n_test >= 1, "data.n_test must be >= 1, got " + std::to_string(o.n_test));
  require(o.n_val >= 0, "data.n_val must be >= 0, got " + std::to_string(o.n_val));
  require_unit(o.prevalence, "prevalence");
  require_unit(o.bias, "bias");
  require(std::isfinite(o.breast_contrast) && o.breast_contrast >= 0.0,
          "data.breast_contrast must be >= 0, got " + num(o.breast_contrast));
  require_unit(o.marker_rate_a1, "marker_rate_a1");
  require_unit(o.marker_rate_a0, "marker_rate_a0");
  require_unit(o.severity_min, "severity_min");
  require_unit(o.severity_max, "severity_max");
  require(o.severity_min <= o.severity_max, "data.severity_min (" + num(o.severity_min) +
                                                ") must be <= data.severity_max (" +
                                                num(o.severity_max) + ")");
  require(std::isfinite(o.noise_std) && o.noise_std >= 0.0,
          "data.noise_std must be >= 0, got " + num(o.noise_std));
  require(std::isfinite(o.age_effect) && o.age_effect >= 0.0 && o.age_effect <= 0.5,
          "data.age_effect must be in [0, 0.5], got " + num(o.age_effect));
  require_unit(o.age_bias, "age_bias");
}

using phantom_detail::render_unchecked;

Dataset make_phantom(const PhantomOptions& options) {
  check_options(options);
  Dataset ds;
  // Indexed by split number (kTrainSplit, kTestSplit, kValSplit).
  const char* names[3] = {"train", "test", "val"};
  ImageSet* sets[3] = {&ds.train, &ds.test, &ds.val};
  const std::int64_t counts[3] = {options.n_train, options.n_test, options.n_val};
  const std::int64_t hw = static_cast<std::int64_t>(options.image_size) * options.image_size;
  for (int split = 0; split < 3; ++split) {
    ImageSet& set = *sets[split];
    const auto n = static_cast<std::size_t>(counts[split]);
    set.height = set.width = options.image_size;
    set.pixels.assign(n * static_cast<std::size_t>(hw), 0.f);
    set.label.assign(n, 0);
    set.sa.assign(n, 0);
    set.source.assign(n, std::string());
    if (options.age_effect > 0.0 || options.age_bias > 0.0) set.age.assign(n, 0.f);
  }

  // Images are independent (one stream each), so they are rendered by a few worker threads over
  // disjoint index ranges; the result does not depend on the number of threads.
  const std::int64_t total = counts[0] + counts[1] + counts[2];
  const auto render_range = [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t g = begin; g < end; ++g) {
      const int split = g < counts[0] ? kTrainSplit : g < counts[0] + counts[1] ? kTestSplit : kValSplit;
      const std::int64_t i = g - (split == kTrainSplit ? 0 : split == kTestSplit ? counts[0] : counts[0] + counts[1]);
      ImageSet& set = *sets[split];
      const PhantomTruth t = render_unchecked(options, split, i, set.pixels.data() + i * hw);
      const auto k = static_cast<std::size_t>(i);
      set.label[k] = t.label;
      set.sa[k] = t.sa;
      if (!set.age.empty()) set.age[k] = static_cast<float>(t.age);
      set.source[k] = std::string("phantom:") + names[split] + ":" + std::to_string(i);
    }
  };
  const std::int64_t max_threads = std::max<unsigned>(1u, std::thread::hardware_concurrency());
  const std::int64_t pixels_per_thread = 256 * 64 * 64;  // below this, a thread is not worth it
  const std::int64_t threads = std::clamp<std::int64_t>(total * hw / pixels_per_thread, 1,
                                                        std::min<std::int64_t>(max_threads, 8));
  if (threads == 1) {
    render_range(0, total);
  } else {
    std::vector<std::thread> workers;
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(threads));
    for (std::int64_t w = 0; w < threads; ++w) {
      const std::int64_t begin = total * w / threads, end = total * (w + 1) / threads;
      workers.emplace_back([&, w, begin, end] {
        try {
          render_range(begin, end);
        } catch (...) {
          errors[static_cast<std::size_t>(w)] = std::current_exception();
        }
      });
    }
    for (auto& t : workers) t.join();
    for (const auto& e : errors) {
      if (e) std::rethrow_exception(e);
    }
  }
  validate(ds.train, "phantom train");
  validate(ds.test, "phantom test");
  return ds;
}

PhantomRegions phantom_regions(const PhantomOptions& options, int images, double threshold) {
  check_options(options);
  const int size = options.image_size;
  const std::size_t hw = static_cast<std::size_t>(size) * static_cast<std::size_t>(size);
  PhantomRegions r;
  r.size = size;
  // One layer's map: the mean over test images of |render(with) - render(without)|.
  const auto layer_map = [&](PhantomOptions with, PhantomOptions without) {
    std::vector<double> sum(hw, 0.0);
    std::vector<float> a(hw), b(hw);
    for (int i = 0; i < images; ++i) {
      render_unchecked(with, kTestSplit, i, a.data());
      render_unchecked(without, kTestSplit, i, b.data());
      for (std::size_t p = 0; p < hw; ++p) sum[p] += std::abs(static_cast<double>(a[p]) - b[p]);
    }
    std::vector<float> map(hw);
    for (std::size_t p = 0; p < hw; ++p) map[p] = static_cast<float>(sum[p] / std::max(images, 1));
    return map;
  };
  PhantomOptions with = options, without = options;
  without.breast_contrast = 0.0;
  r.breast = layer_map(with, without);
  with = without = options;
  with.marker_rate_a0 = with.marker_rate_a1 = 1.0;
  without.marker_rate_a0 = without.marker_rate_a1 = 0.0;
  r.marker = layer_map(with, without);
  with = without = options;
  with.prevalence = 1.0;
  without.prevalence = 0.0;
  r.effusion = layer_map(with, without);
  const auto region = [&](const std::vector<float>& map) {
    const float peak = *std::max_element(map.begin(), map.end());
    std::vector<std::uint8_t> mask(hw, 0);
    for (std::size_t p = 0; p < hw; ++p) mask[p] = peak > 0.f && map[p] >= threshold * peak ? 1 : 0;
    return mask;
  };
  r.sa_region = region(r.breast);
  const auto marker = region(r.marker);
  for (std::size_t p = 0; p < hw; ++p) r.sa_region[p] |= marker[p];
  r.disease_region = region(r.effusion);
  return r;
}

}  // namespace dne::data
