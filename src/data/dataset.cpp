// ImageSet accessors and the consistency check every data producer runs (see dataset.hpp).
#include "dne/data/dataset.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "dne/core/errors.hpp"
#include "dne/core/random.hpp"

namespace dne::data {
namespace {

std::size_t offset_of(const ImageSet& set, std::int64_t i) {
  if (i < 0 || i >= set.size()) {
    throw std::out_of_range("ImageSet::image: index " + std::to_string(i) + " outside [0, " +
                            std::to_string(set.size()) + ")");
  }
  if (set.pixels_elsewhere()) throw std::logic_error("ImageSet::image: the pixels are in the image cache, not in memory");
  return static_cast<std::size_t>(i * set.height * set.width);
}

}  // namespace

const float* ImageSet::image(std::int64_t i) const { return pixels.data() + offset_of(*this, i); }

float* ImageSet::image(std::int64_t i) { return pixels.data() + offset_of(*this, i); }

void validate(const ImageSet& set, const std::string& what) {
  const std::int64_t n = set.size();
  if (n > 0 && (set.height <= 0 || set.width <= 0)) {
    throw DataError(what + ": image size " + std::to_string(set.height) + "x" +
                    std::to_string(set.width) + " must be positive");
  }
  if (set.height < 0 || set.width < 0) {
    throw DataError(what + ": negative image size");
  }
  const auto expected = set.pixels_elsewhere() ? 0 : static_cast<std::size_t>(n * set.height * set.width);
  if (set.pixels_elsewhere() && (set.origin.size() != static_cast<std::size_t>(n) || set.origin_split < 0 || set.origin_split > 2))
    throw DataError(what + ": " + std::to_string(set.origin.size()) + " cache rows for " + std::to_string(n) + " labels");
  if (set.pixels.size() != expected) {
    throw DataError(what + ": " + std::to_string(set.pixels.size()) + " pixels, expected N*H*W = " +
                    std::to_string(n) + "*" + std::to_string(set.height) + "*" +
                    std::to_string(set.width) + " = " + std::to_string(expected));
  }
  if (set.sa.size() != static_cast<std::size_t>(n)) {
    throw DataError(what + ": " + std::to_string(set.sa.size()) + " sensitive attributes for " +
                    std::to_string(n) + " labels");
  }
  if (set.source.size() != static_cast<std::size_t>(n)) {
    throw DataError(what + ": " + std::to_string(set.source.size()) + " sources for " +
                    std::to_string(n) + " labels");
  }
  if (!set.age.empty() && set.age.size() != static_cast<std::size_t>(n))
    throw DataError(what + ": " + std::to_string(set.age.size()) + " ages for " + std::to_string(n) + " labels");
  for (std::size_t k = 0; k < set.age.size(); ++k)
    if (!std::isfinite(set.age[k])) throw DataError(what + ": image " + std::to_string(k) + " has a non-finite age");
  for (std::int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(i);
    if (set.label[k] != 0 && set.label[k] != 1) {
      throw DataError(what + ": image " + std::to_string(i) + " has label " +
                      std::to_string(set.label[k]) + " (expected 0 or 1)");
    }
    if (set.sa[k] != 0 && set.sa[k] != 1) {
      throw DataError(what + ": image " + std::to_string(i) + " has sensitive attribute " +
                      std::to_string(set.sa[k]) + " (expected 0 or 1)");
    }
  }
  const std::size_t hw = static_cast<std::size_t>(set.height * set.width);
  for (std::size_t p = 0; p < set.pixels.size(); ++p) {
    if (!std::isfinite(set.pixels[p])) {
      throw DataError(what + ": image " + std::to_string(p / hw) + " (" +
                      (set.source.size() > p / hw ? set.source[p / hw] : std::string("?")) +
                      ") has a non-finite pixel at (" + std::to_string((p % hw) / set.width) +
                      ", " + std::to_string(p % static_cast<std::size_t>(set.width)) + ")");
    }
  }
}

ImageSet subset(const ImageSet& set, const std::vector<std::int64_t>& indices) {
  ImageSet out;
  out.height = set.height;
  out.width = set.width;
  out.origin_split = set.origin_split;
  const std::size_t hw = static_cast<std::size_t>(set.height * set.width);
  if (!set.pixels_elsewhere()) out.pixels.reserve(indices.size() * hw);
  for (const std::int64_t i : indices) {
    if (set.pixels_elsewhere()) {
      out.origin.push_back(set.origin.at(static_cast<std::size_t>(i)));
    } else {
      const float* image = set.image(i);
      out.pixels.insert(out.pixels.end(), image, image + hw);
    }
    out.label.push_back(set.label[static_cast<std::size_t>(i)]);
    out.sa.push_back(set.sa[static_cast<std::size_t>(i)]);
    out.source.push_back(set.source[static_cast<std::size_t>(i)]);
    if (!set.age.empty()) out.age.push_back(set.age[static_cast<std::size_t>(i)]);
  }
  return out;
}

std::array<std::int64_t, 4> cell_sizes(const std::vector<int>& sa, const std::vector<int>& label) {
  std::array<std::int64_t, 4> sizes{};
  for (std::size_t i = 0; i < label.size(); ++i) ++sizes[static_cast<std::size_t>(2 * sa[i] + label[i])];
  return sizes;
}

std::vector<std::int64_t> stratified_sample(const std::vector<int>& sa, const std::vector<int>& label,
                                            const std::array<std::int64_t, 4>& counts, std::uint64_t seed,
                                            std::uint32_t step_base) {
  std::vector<bool> taken(label.size(), false);
  for (int cell = 0; cell < 4; ++cell) {
    std::vector<std::int64_t> members;
    for (std::size_t i = 0; i < label.size(); ++i)
      if (2 * sa[i] + label[i] == cell) members.push_back(static_cast<std::int64_t>(i));
    CounterStream stream(seed, StreamPurpose::kSplit, step_base + static_cast<std::uint32_t>(cell), 0);
    const auto order = random_permutation(static_cast<std::int64_t>(members.size()), stream);
    const auto take = std::min<std::size_t>(static_cast<std::size_t>(std::max<std::int64_t>(counts[static_cast<std::size_t>(cell)], 0)),
                                            members.size());
    for (std::size_t k = 0; k < take; ++k) taken[static_cast<std::size_t>(members[static_cast<std::size_t>(order[k])])] = true;
  }
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < taken.size(); ++i)
    if (taken[i]) out.push_back(static_cast<std::int64_t>(i));
  return out;
}

std::array<std::int64_t, 4> proportional_counts(const std::array<std::int64_t, 4>& sizes, std::int64_t total) {
  std::int64_t n = 0;
  for (const auto s : sizes) n += s;
  if (total >= n) return sizes;
  std::array<std::int64_t, 4> counts{};
  std::array<double, 4> remainder{};
  std::int64_t given = 0;
  for (std::size_t c = 0; c < 4; ++c) {
    const double exact = static_cast<double>(total) * static_cast<double>(sizes[c]) / static_cast<double>(n);
    counts[c] = static_cast<std::int64_t>(std::floor(exact));
    remainder[c] = exact - static_cast<double>(counts[c]);
    given += counts[c];
  }
  for (; given < total; ++given) {
    std::size_t best = 0;
    for (std::size_t c = 1; c < 4; ++c)
      if (remainder[c] > remainder[best]) best = c;
    ++counts[best];
    remainder[best] = -1.0;
  }
  return counts;
}

std::vector<std::int64_t> poison_labels(ImageSet& set, double rate, int group, std::uint64_t seed) {
  if (!(rate >= 0.0 && rate <= 1.0)) throw ConfigError("data.poison_rate must be in [0, 1], got " + std::to_string(rate));
  if (group != 0 && group != 1) throw ConfigError("data.poison_group must be 0 or 1, got " + std::to_string(group));
  if (rate == 0.0) return {};
  // one permutation over the whole group (both labels): the flipped share is the group's rate
  std::vector<std::int64_t> members;
  for (std::size_t i = 0; i < set.sa.size(); ++i)
    if (set.sa[i] == group) members.push_back(static_cast<std::int64_t>(i));
  CounterStream stream(seed, StreamPurpose::kSplit, 200 + static_cast<std::uint32_t>(group), 0);
  const auto order = random_permutation(static_cast<std::int64_t>(members.size()), stream);
  const auto take = static_cast<std::size_t>(std::llround(rate * static_cast<double>(members.size())));
  std::vector<std::int64_t> flipped;
  for (std::size_t k = 0; k < take; ++k) flipped.push_back(members[static_cast<std::size_t>(order[k])]);
  std::sort(flipped.begin(), flipped.end());
  for (const auto i : flipped) set.label[static_cast<std::size_t>(i)] = 1 - set.label[static_cast<std::size_t>(i)];
  return flipped;
}

namespace {

/// DataError "<cause> leaves the training split without label v" (or sa v) unless `train` has
/// both values of its label and of its attribute: the probes need both classes.
void require_both_classes(const ImageSet& train, const std::string& cause) {
  for (const auto* values : {&train.label, &train.sa})
    for (int v = 0; v <= 1; ++v)
      if (std::find(values->begin(), values->end(), v) == values->end())
        throw DataError(cause + " leaves the training split without " + (values == &train.label ? "label " : "sa ") +
                        std::to_string(v));
}

}  // namespace

void carve_validation(Dataset& dataset, double fraction, std::uint64_t seed) {
  if (fraction <= 0.0) return;
  if (dataset.val.size() > 0)
    throw DataError("data.val_fraction = " + std::to_string(fraction) +
                    ": the data already has a validation split (manifest rows with split 'val'); set it to 0");
  const ImageSet& train = dataset.train;
  std::array<std::int64_t, 4> counts = cell_sizes(train.sa, train.label);
  for (auto& c : counts) c = std::llround(fraction * static_cast<double>(c));
  const auto val = stratified_sample(train.sa, train.label, counts, seed, 0);
  std::vector<bool> to_val(static_cast<std::size_t>(train.size()), false);
  for (const auto i : val) to_val[static_cast<std::size_t>(i)] = true;
  std::vector<std::int64_t> keep;
  for (std::int64_t i = 0; i < train.size(); ++i)
    if (!to_val[static_cast<std::size_t>(i)]) keep.push_back(i);
  ImageSet new_train = subset(train, keep), new_val = subset(train, val);
  require_both_classes(new_train, "data.val_fraction = " + std::to_string(fraction));
  dataset.train = std::move(new_train);
  dataset.val = std::move(new_val);
}

void resample_training(Dataset& dataset, const std::string& how, double fraction, std::uint64_t seed) {
  if (how == "none") return;
  const ImageSet& train = dataset.train;
  std::vector<std::int64_t> rows;
  if (how == "subsample") {
    std::array<std::int64_t, 4> counts = cell_sizes(train.sa, train.label);
    for (auto& c : counts) c = std::llround(fraction * static_cast<double>(c));
    rows = stratified_sample(train.sa, train.label, counts, seed, 300);
  } else if (how == "bootstrap") {
    for (int cell = 0; cell < 4; ++cell) {
      std::vector<std::int64_t> members;
      for (std::size_t i = 0; i < train.label.size(); ++i)
        if (2 * train.sa[i] + train.label[i] == cell) members.push_back(static_cast<std::int64_t>(i));
      CounterStream stream(seed, StreamPurpose::kSplit, 400 + static_cast<std::uint32_t>(cell), 0);
      for (std::size_t k = 0; k < members.size(); ++k) rows.push_back(members[stream.below(members.size())]);
    }
    std::sort(rows.begin(), rows.end());
  } else {
    throw std::invalid_argument("resample_training: unknown resampling '" + how + "'");
  }
  ImageSet drawn = subset(train, rows);
  require_both_classes(drawn, "data.resample = \"" + how + "\"");
  dataset.train = std::move(drawn);
}

}  // namespace dne::data
