// The decoded-image cache of a run directory: a data set's images decoded once per run, not
// once per experiment.
//
// `dne run` decodes a manifest's images before the sweep (rank 0, in parallel threads) and
// stores the resulting Dataset in DIR/cache/images-<key>.h5, with key = FNV-1a-64 of the data's
// content hash (manifest bytes, every image, the row selection), data.image_size and data.resize:
// any change of an input or of the preprocessing is a different file, so a stale cache is never
// read. Every experiment then reads the cache (one HDF5 read) instead of decoding. Layout:
// /{train,val,test}/{pixels (N, S, S) float32, label (N,) int32, sa (N,) int32, source (N,) strings},
// root attributes data_hash, image_size, resize. Written through store::ResultWriter (temporary
// name, renamed when complete), so a cache file is whole or absent.
#pragma once

#include <cstdint>
#include <string>

#include "dne/data/dataset.hpp"

namespace dne::data {

/// DIR/cache/images-<16 hex>.h5 for this data hash and preprocessing.
std::string image_cache_path(const std::string& run_dir, const std::string& data_hash, std::int64_t image_size,
                             const std::string& resize);

/// Writes `ds` to `path` (creating its folder). Throws dne::StoreError if it cannot be written.
void write_image_cache(const std::string& path, const Dataset& ds, const std::string& data_hash,
                       std::int64_t image_size, const std::string& resize);

/// Reads the cache at `path`; throws dne::StoreError if it is missing, unreadable or was made for
/// another data hash, size or resize mode.
Dataset read_image_cache(const std::string& path, const std::string& data_hash, std::int64_t image_size,
                         const std::string& resize);

}  // namespace dne::data
