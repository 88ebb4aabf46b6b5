// The decoded-image cache (see image_cache.hpp).
#include "dne/data/image_cache.hpp"

#include <filesystem>
#include <system_error>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/core/hash.hpp"
#include "dne/store/result_file.hpp"

namespace dne::data {
namespace {

constexpr const char* kSplitNames[3] = {"train", "val", "test"};

}  // namespace

std::string image_cache_path(const std::string& run_dir, const std::string& data_hash, std::int64_t image_size,
                             const std::string& resize) {
  const std::string key = data_hash + "\n" + std::to_string(image_size) + "\n" + resize;
  return (std::filesystem::path(run_dir) / "cache" / ("images-" + hex16(fnv1a64(key)) + ".h5")).string();
}

void write_image_cache(const std::string& path, const Dataset& ds, const std::string& data_hash,
                       std::int64_t image_size, const std::string& resize) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) throw StoreError(path + ": cannot create its folder: " + ec.message());
  store::ResultWriter w(path);
  w.attribute("/", "data_hash", data_hash);
  w.attribute("/", "image_size", image_size);
  w.attribute("/", "resize", resize);
  const ImageSet* sets[3] = {&ds.train, &ds.val, &ds.test};
  for (int s = 0; s < 3; ++s) {
    const ImageSet& set = *sets[s];
    const std::string g = std::string("/") + kSplitNames[s];
    const auto n = static_cast<std::uint64_t>(set.size());
    w.dataset(g + "/pixels", set.pixels, {n, static_cast<std::uint64_t>(image_size), static_cast<std::uint64_t>(image_size)});
    w.dataset(g + "/label", std::vector<std::int32_t>(set.label.begin(), set.label.end()), {n});
    w.dataset(g + "/sa", std::vector<std::int32_t>(set.sa.begin(), set.sa.end()), {n});
    w.dataset(g + "/source", set.source);
  }
  w.commit();
}

Dataset read_image_cache(const std::string& path, const std::string& data_hash, std::int64_t image_size,
                         const std::string& resize) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw StoreError(path + ": no image cache");
  const store::H5Reader r(path);
  if (r.string_attribute("/", "data_hash") != data_hash || r.int_attribute("/", "image_size") != image_size ||
      r.string_attribute("/", "resize") != resize)
    throw StoreError(path + ": the image cache was made for other data or preprocessing");
  Dataset ds;
  ImageSet* sets[3] = {&ds.train, &ds.val, &ds.test};
  for (int s = 0; s < 3; ++s) {
    ImageSet& set = *sets[s];
    const std::string g = std::string("/") + kSplitNames[s];
    std::vector<std::uint64_t> dims;
    set.pixels = r.floats(g + "/pixels", dims);
    set.height = set.width = image_size;
    for (const auto v : r.doubles(g + "/label", dims)) set.label.push_back(static_cast<int>(v));
    for (const auto v : r.doubles(g + "/sa", dims)) set.sa.push_back(static_cast<int>(v));
    set.source = r.strings(g + "/source");
    validate(set, path + " " + kSplitNames[s]);
  }
  return ds;
}

}  // namespace dne::data
