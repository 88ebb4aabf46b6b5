// The decoded-image cache of a run directory: a data set's images decoded once per run, not
// once per experiment, stored compactly, and made by every rank of the job together.
//
// `dne run` decodes a manifest's images before the sweep into DIR/cache/images-<key>.h5, with
// key = FNV-1a-64 of the cache format (kImageCacheFormat), the data's content hash (manifest
// bytes, every image, the row selection), data.image_size and data.resize: any change of an
// input, of the preprocessing or of the layout is a different file, so a stale or old-format
// cache is never read. Every experiment then reads the cache instead of decoding.
//
// Samples are stored at the precision the sources carry: `bits` = 8 when every image of the
// selection is 8-bit (JPEG, 8-bit PNG), 16 when one is 16-bit PNG or DICOM. A decoded, resized
// pixel v in [0, 1] is stored as q = round(v * M), M = 2^bits - 1 (halves up), and read back as
// q / M in float32: |v - q / M| <= 1 / (2M) (0.00196 for 8 bits, 7.6e-6 for 16 bits). An 8-bit
// image used at its own size is therefore stored exactly (v = k / 255).
//
// Layout (format 2): /{train,val,test}/pixels (N, S, S) uint8 or uint16, contiguous and
// unfiltered, so that each rank can write its images at a file offset (pwrite) and read them the
// same way; label (N,) int32, sa (N,) int32, source (N,) strings; root attributes format,
// pixel_bits, data_hash, image_size, resize. The file is made under a temporary name by one
// process (ImageCacheFile), filled by any number of processes (ImageCachePixels,
// fill_image_cache) and renamed when every image is in, so a cache file is whole or absent.
// It is read through a read-only memory map (ImageCacheMap): the ranks of a node share the
// file's pages, one copy per node. (A cache file truncated while mapped would fault on access;
// the run directory's files are only ever replaced by rename, which leaves a mapping intact.)
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dne/data/dataset.hpp"
#include "dne/data/manifest.hpp"
#include "dne/store/result_file.hpp"

namespace dne::data {

/// The cache layout's version; part of the cache key. (1: float32 pixels, chunked.)
inline constexpr std::int64_t kImageCacheFormat = 2;

/// q = round(clamp(v, 0, 1) * M), M = 2^bits - 1, halves up; NaN -> 0. bits: 8 or 16.
std::uint16_t quantize_pixel(float v, int bits);
/// q / M in float32.
float dequantize_pixel(std::uint16_t q, int bits);

/// DIR/cache/images-<16 hex>.h5 for this data hash and preprocessing.
std::string image_cache_path(const std::string& run_dir, const std::string& data_hash, std::int64_t image_size,
                             const std::string& resize);

/// Where the pixels of a cache being made go: its temporary file, the sample width and, per
/// split (train, val, test), the byte offset of its (N, S, S) samples in that file.
struct ImageCacheLayout {
  std::string temp_path;
  int bits = 8;
  std::int64_t image_size = 0;
  std::array<std::uint64_t, 3> offset{};
  std::array<std::int64_t, 3> rows{};

  /// One line of text (for sending to other ranks) and back; parse throws dne::StoreError.
  std::string to_text() const;
  static ImageCacheLayout from_text(const std::string& text);
};

/// A cache file being made: labels, attributes, sources and attributes written from `sets`
/// (their pixels are not used), the pixel datasets reserved. Destroyed before commit(), it
/// removes the temporary file. Throws dne::StoreError if it cannot be written.
class ImageCacheFile {
 public:
  ImageCacheFile(const std::string& path, const Dataset& sets, const std::string& data_hash, std::int64_t image_size,
                 const std::string& resize, int bits);
  const ImageCacheLayout& layout() const { return layout_; }
  /// Publish the file under its final name (every image must be written by then).
  void commit() { writer_.commit(); }

 private:
  store::H5Writer writer_;
  ImageCacheLayout layout_;
};

/// Writes images into a cache being made (any process, any thread): write(split, i, pixels)
/// quantizes the S * S values and puts them at image i of `split`.
class ImageCachePixels {
 public:
  explicit ImageCachePixels(ImageCacheLayout layout);
  ~ImageCachePixels();
  ImageCachePixels(const ImageCachePixels&) = delete;
  ImageCachePixels& operator=(const ImageCachePixels&) = delete;
  void write(Split split, std::int64_t index, const float* pixels);
  /// Closes the file, throwing dne::StoreError if the system reports a failed write there.
  void close();

 private:
  ImageCacheLayout layout_;
  int fd_ = -1;
};

/// Bits per sample the cache of these manifest rows needs: the largest image_sample_bits of
/// rows `rows`, read on `threads` threads (8 when `rows` is empty).
int manifest_sample_bits(const Manifest& manifest, const std::vector<std::size_t>& rows, int threads);

/// Decodes the manifest rows `rows` (decode_rows) into the cache at `layout`; `progress(done)`
/// is called after each image with the number written so far (from the decoding threads).
/// Throws what decode_rows throws, dne::StoreError when the cache cannot be written.
void fill_image_cache(const Manifest& manifest, const std::vector<std::size_t>& rows, const DecodeOptions& options,
                      const ImageCacheLayout& layout, const std::function<void(std::int64_t done)>& progress = {});

/// Writes a decoded `ds` to `path` in one process (creating its folder) with `bits`-bit samples.
/// Throws dne::StoreError if it cannot be written.
void write_image_cache(const std::string& path, const Dataset& ds, const std::string& data_hash,
                       std::int64_t image_size, const std::string& resize, int bits);

/// A cache file mapped read-only (mmap, MAP_SHARED) and checked: every split's samples in place.
/// However many ranks of a node map it, the node holds one copy (the file's pages in the page
/// cache, counted as Shared_Clean in each rank's /proc/self/smaps once two ranks touch them).
/// Nothing is read until an image is: a rank touches only the pages of the images it uses.
class ImageCacheMap {
 public:
  /// Throws dne::StoreError if `path` is missing, unreadable, of another format, made for
  /// another data hash, size or resize mode, or if a split's samples are not where its layout
  /// says (a truncated file).
  ImageCacheMap(const std::string& path, const std::string& data_hash, std::int64_t image_size, const std::string& resize);
  ~ImageCacheMap();
  ImageCacheMap(const ImageCacheMap&) = delete;
  ImageCacheMap& operator=(const ImageCacheMap&) = delete;

  int bits() const { return bits_; }
  std::int64_t image_size() const { return image_size_; }
  std::int64_t rows(Split split) const { return rows_[static_cast<int>(split)]; }
  /// The splits' labels, attributes and sources, their pixels elsewhere: image i of split k is
  /// row i of the map's split k (ImageSet::origin), height = width = image_size.
  const Dataset& tables() const { return tables_; }
  /// Image i of `split` dequantized into `out` (S * S floats). std::out_of_range for a bad i.
  void read(Split split, std::int64_t i, float* out) const;
  /// Bytes of the file that are mapped.
  std::size_t mapped_bytes() const { return length_; }

 private:
  const unsigned char* base_ = nullptr;
  std::size_t length_ = 0;
  int bits_ = 8;
  std::int64_t image_size_ = 0;
  std::array<std::int64_t, 3> rows_{};
  std::array<std::uint64_t, 3> offset_{};
  Dataset tables_;
};

/// Reads the cache at `path` (pixels dequantized to float32); throws dne::StoreError if it is
/// missing, unreadable or was made for another format, data hash, size or resize mode.
Dataset read_image_cache(const std::string& path, const std::string& data_hash, std::int64_t image_size,
                         const std::string& resize);

}  // namespace dne::data
