// CSV manifests: the on-disk form of a data set (image files plus one CSV listing them).
//
// Format (docs/datasets.md): a header naming the columns, then one row per image. Required
// columns, in any order: `path` (relative to the CSV's folder, or absolute), `split` (`train`,
// `val` or `test`), `label` (`0`/`1`, the disease y) and the sensitive-attribute column named by
// data.sa_column (default `sex`: `0`/`1` or `M`/`F`, F = 1). Any other column (`patient`, `age`,
// `view`, an extra attribute, ...) is allowed and ignored, so `dne data import` manifests and a
// hand-written `path,split,sex,label` file both load. Fields may be double-quoted (csv.hpp).
//
// Reading is two steps, so that a sweep checks its data once, before any experiment starts:
// `read_manifest` checks the header, every row and that every image file exists, and picks the
// rows in use (data.limit_*); `decode_manifest` decodes and resizes them, in parallel threads, to
// a Dataset. `data_content_hash` is what puts the data into an experiment id.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dne/config/config.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/hash.hpp"
#include "dne/data/dataset.hpp"
#include "dne/data/image_io.hpp"

namespace dne::data {

enum class Split { kTrain, kVal, kTest };

/// Which rows of a manifest an experiment uses (data.sa_column, data.limit_train / limit_test).
struct ManifestOptions {
  // Defaults: the [data] keys' (config::defaults(), the one place they are written).
  std::string sa_column = config::defaults().data.sa_column;
  std::int64_t limit_train = config::defaults().data.limit_train;  // at most this many train rows (val rows shrink by the same share); 0 = all
  std::int64_t limit_test = config::defaults().data.limit_test;    // at most this many test rows; 0 = all
};

/// One image row of a manifest, checked, its path resolved against the CSV's folder.
struct ManifestRow {
  std::int64_t line = 0;  // 1-based line of the CSV (for messages)
  std::string path;       // the image file
  Split split = Split::kTrain;
  int sa = 0, label = 0;
};

/// A manifest read and checked, not decoded.
struct Manifest {
  std::string csv_path;
  std::string csv_hash;            // FNV-1a-64 of the CSV's bytes (16 hex digits)
  std::int64_t rows_in_file = 0;   // image rows of the CSV
  std::vector<ManifestRow> rows;   // the rows in use (after the limits), in file order
};

/// Reads and checks the manifest at `csv_path`: the header has `path`, `split`, `label` and
/// options.sa_column; every row has valid values and an existing image file; train and test have
/// rows, and train has both labels and both attribute values. Limits then keep a stratified
/// subset by (sa, label) of each split, the same for every seed: train from streams (0, kSplit,
/// 100 + cell), val (its share of rows scaled like train's) 104 + cell, test 108 + cell.
/// Throws dne::DataError "<csv_path>:<line>: ..." for a bad row and "<csv_path>: ..." for the
/// file as a whole; dne::ConfigError for negative limits.
Manifest read_manifest(const std::string& csv_path, const ManifestOptions& options);

/// The hash of what an experiment reads from `manifest`: the CSV's bytes, the options that pick
/// its rows, and every image in use (file_fingerprint `how`; computed on `threads` threads).
/// 16 hex digits. Throws dne::DataError naming an image that cannot be read.
std::string data_content_hash(const Manifest& manifest, const ManifestOptions& options, FileFingerprint how,
                              int threads);

/// How images become (S, S) arrays (data.image_size, data.resize) and on how many threads.
struct DecodeOptions {
  // Defaults: the [data] keys' (config::defaults(), the one place they are written).
  std::int64_t image_size = config::defaults().data.image_size;
  ResizeMode resize = parse_resize_mode(config::defaults().data.resize);
  int threads = 1;
  std::int64_t max_pixels = config::defaults().data.max_pixels;  // checked from the header, before decoding
};

/// The smallest image side a manifest row may have (a 1x1 image stretched to S x S is no X-ray).
constexpr std::int64_t kMinImageSide = 16;

/// Where manifest row i lands: its split and its index in that split (rows keep file order).
struct RowSlot {
  Split split = Split::kTrain;
  std::int64_t index = 0;
};

/// The train, val and test ImageSets of `manifest` without pixels (height = width =
/// image_size; label, sa, source = the image path), and the slot of every row.
Dataset split_rows(const Manifest& manifest, std::int64_t image_size, std::vector<RowSlot>& slots);

/// decode_rows' failure: a DataError that also says which manifest row (index) it was.
class RowDecodeError : public DataError {
 public:
  RowDecodeError(std::size_t row, const std::string& what) : DataError(what), row(row) {}
  std::size_t row;
};

/// Decodes the rows `rows` (indices into manifest.rows, ascending) on options.threads threads:
/// read_grayscale_image, the size and constant-image checks, fit_square to (S, S); each result
/// goes to `sink(row, pixels)` (from any of the threads, each row once). Throws
/// RowDecodeError "<csv_path>:<line>: <image error>" for the lowest failing index of `rows`.
void decode_rows(const Manifest& manifest, const std::vector<std::size_t>& rows, const DecodeOptions& options,
                 const std::function<void(std::size_t row, const std::vector<float>& pixels)>& sink);

/// Decodes every row of `manifest` (decode_rows): train, val and test ImageSets in file order,
/// sources the image paths. The result does not depend on the thread count. Throws
/// dne::DataError "<csv_path>:<line>: <image error>" for the first row (in file order) that
/// cannot be decoded.
Dataset decode_manifest(const Manifest& manifest, const DecodeOptions& options);

/// read_manifest + decode_manifest with default options (stretch, one thread).
Dataset load_manifest(const std::string& csv_path, std::int64_t image_size);

/// Writes `ds` as out_dir/train/000000.png ..., out_dir/test/000000.png ..., out_dir/montage.png
/// (up to 4 test examples of each (sex, label) cell, one row per cell in the order (0,0), (0,1),
/// (1,0), (1,1)) and, last, out_dir/manifest.csv `path,split,sex,label` (written to
/// manifest.csv.tmp and renamed, so a manifest exists only when every image is complete).
/// Creates out_dir if needed. Throws dne::DataError if `ds` is invalid, dne::StoreError if a file
/// cannot be written.
void write_phantom(const Dataset& ds, const std::string& out_dir);

}  // namespace dne::data
