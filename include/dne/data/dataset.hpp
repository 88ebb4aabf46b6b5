// In-memory image data sets for dne-sweep.
//
// An ImageSet holds N grayscale images of one size (H, W) with their disease label y, sensitive
// attribute a, an optional age and a human-readable source string; a Dataset is a train and a
// test ImageSet. Precomputed embeddings (data.source = "embeddings") travel in the same type as
// rows of height 1 and width D, so splitting, poisoning and validation are written once. Every
// producer (the phantom generator, the manifest loader) returns these types and calls `validate`
// before handing them on, so downstream modules (fm, probe, dne) can rely on consistent sizes,
// binary labels and finite pixels. This header knows nothing about the foundation model or Torch.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace dne::data {

/// N grayscale images of size (H, W) with per-image labels.
struct ImageSet {
  std::int64_t height = 0, width = 0;
  std::vector<float> pixels;  // (N, H, W) row-major, values in [0, 1]
  std::vector<int> label;     // (N,) disease y in {0, 1}
  std::vector<int> sa;        // (N,) sensitive attribute a in {0, 1} (1 = female in the phantom)
  std::vector<float> age;     // (N,) a continuous attribute (years), or empty when the data have none
  std::vector<std::string> source;  // (N,) file path, or "phantom:train:17"
  /// Pixels kept elsewhere instead of in `pixels` (a run's image cache, read through its
  /// read-only map: data::ImageCacheMap): then `pixels` is empty and image i is row origin[i] of
  /// the cache's split `origin_split` (0 train, 1 val, 2 test). Empty for images held in memory.
  std::vector<std::int64_t> origin;
  int origin_split = -1;

  /// N, the number of images (the length of `label`).
  std::int64_t size() const { return static_cast<std::int64_t>(label.size()); }
  /// Whether the pixels are elsewhere (`origin`), not in `pixels`.
  bool pixels_elsewhere() const { return !origin.empty(); }
  /// Pointer to image i: (H, W) row-major. Throws std::out_of_range for i outside [0, N) and
  /// std::logic_error when the pixels are elsewhere.
  const float* image(std::int64_t i) const;
  float* image(std::int64_t i);
};

/// A train split (the SA probe, DNE noise and disease probe are fitted on it), an optional
/// validation split carved out of it (data.val_fraction; what is chosen is chosen on it), and a
/// test split (only ever scored).
struct Dataset {
  ImageSet train, test;
  ImageSet val;  // empty unless carve_validation was called with a fraction > 0
};

/// The images `indices` of `set`, in that order (their origin rows, when the pixels are elsewhere).
ImageSet subset(const ImageSet& set, const std::vector<std::int64_t>& indices);

/// Row indices (ascending) of a stratified sample of the rows described by `sa` and `label`
/// (equal lengths, values 0/1): from cell c = 2 * sa + label, the first counts[c] members of a
/// permutation of the cell drawn from CounterStream(seed, kSplit, step_base + c, 0). A count
/// larger than its cell takes the whole cell.
std::vector<std::int64_t> stratified_sample(const std::vector<int>& sa, const std::vector<int>& label,
                                            const std::array<std::int64_t, 4>& counts, std::uint64_t seed,
                                            std::uint32_t step_base);

/// How many rows of each (sa, label) cell a stratified sample of `total` rows takes: the cells'
/// shares of `total` (cell sizes `sizes`), rounded down, the remaining rows going to the largest
/// fractional parts (ties: lower cell). total >= the sum of sizes takes everything.
std::array<std::int64_t, 4> proportional_counts(const std::array<std::int64_t, 4>& sizes, std::int64_t total);

/// The number of rows of every (sa, label) cell, index 2 * sa + label.
std::array<std::int64_t, 4> cell_sizes(const std::vector<int>& sa, const std::vector<int>& label);

/// Moves round(fraction * n_cell) images of every (sa, label) cell of `dataset.train` into
/// `dataset.val` (stratified, so every cell the training split has keeps its share), chosen by a
/// permutation of the cell from stream (seed, kSplit, 2 * sa + label, 0); both splits keep the
/// training order. fraction = 0 leaves the data as it is. Throws dne::DataError if the training
/// split would lose a whole class of label or sa, or if `dataset.val` is not empty already (a
/// manifest with its own val rows).
void carve_validation(Dataset& dataset, double fraction, std::uint64_t seed);

/// Seeds that vary the data (data.resample): replaces `dataset.train` by what seed `seed` draws of
/// it, cell by cell (c = 2 * sa + label), in ascending row order. "subsample": round(fraction *
/// n_c) rows of every cell without replacement (a permutation from stream (seed, kSplit, 300 + c,
/// 0)); "bootstrap": n_c rows of every cell drawn with replacement (stream (seed, kSplit, 400 + c,
/// 0)), so a row can appear several times and about 37% of them not at all. "none" leaves the
/// data as it is. Validation and test splits are never touched. Throws dne::DataError if the
/// draw leaves the training split without a class of label or sa; std::invalid_argument for
/// another `how`.
void resample_training(Dataset& dataset, const std::string& how, double fraction, std::uint64_t seed);

/// The label-poisoning attack (data.poison_rate, data.poison_group): flips the disease label of
/// round(rate * n_group) images of `set` whose attribute is `group`, chosen by a permutation of
/// those images from stream (seed, kSplit, 200 + group, 0). Returns the flipped indices,
/// ascending. rate = 0 changes nothing. Throws dne::ConfigError for a rate outside [0, 1] or a
/// group other than 0 or 1.
std::vector<std::int64_t> poison_labels(ImageSet& set, double rate, int group, std::uint64_t seed);

/// Checks that `set` is consistent: H, W > 0 when N > 0; pixels.size() == N * H * W (or, with
/// the pixels elsewhere, no pixels and N origin rows);
/// sa and source have N entries; label and sa in {0, 1}; every pixel finite; age empty or N
/// finite values.
/// Throws dne::DataError "<what>: ..." naming the first problem and the image index.
void validate(const ImageSet& set, const std::string& what);

}  // namespace dne::data
