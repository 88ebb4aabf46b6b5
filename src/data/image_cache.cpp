// The decoded-image cache (see image_cache.hpp): the file made by one process, its pixels
// written by many with pwrite at the offsets HDF5 reserved, read back and dequantized.
#include "dne/data/image_cache.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/core/hash.hpp"
#include "dne/data/image_io.hpp"

namespace dne::data {
namespace {

constexpr const char* kSplitNames[3] = {"train", "val", "test"};

std::uint32_t max_sample(int bits) {
  if (bits != 8 && bits != 16) throw StoreError("image cache: samples are 8 or 16 bits, not " + std::to_string(bits));
  return (1u << bits) - 1u;
}

}  // namespace

std::uint16_t quantize_pixel(float v, int bits) {
  const auto m = static_cast<double>(max_sample(bits));
  if (!(v > 0.0f)) return 0;  // NaN too
  if (v >= 1.0f) return static_cast<std::uint16_t>(m);
  return static_cast<std::uint16_t>(std::floor(static_cast<double>(v) * m + 0.5));  // exact in double
}

float dequantize_pixel(std::uint16_t q, int bits) { return static_cast<float>(q) / static_cast<float>(max_sample(bits)); }

std::string image_cache_path(const std::string& run_dir, const std::string& data_hash, std::int64_t image_size,
                             const std::string& resize) {
  const std::string key = "format " + std::to_string(kImageCacheFormat) + "\n" + data_hash + "\n" + std::to_string(image_size) + "\n" + resize;
  return (std::filesystem::path(run_dir) / "cache" / ("images-" + hex16(fnv1a64(key)) + ".h5")).string();
}

std::string ImageCacheLayout::to_text() const {
  std::ostringstream out;
  out << bits << ' ' << image_size;
  for (int s = 0; s < 3; ++s) out << ' ' << offset[s] << ' ' << rows[s];
  out << ' ' << temp_path;
  return out.str();
}

ImageCacheLayout ImageCacheLayout::from_text(const std::string& text) {
  ImageCacheLayout l;
  std::istringstream in(text);
  in >> l.bits >> l.image_size;
  for (int s = 0; s < 3; ++s) in >> l.offset[s] >> l.rows[s];
  in.get();  // the space before the path (which may contain spaces)
  std::getline(in, l.temp_path);
  if (!in && !in.eof()) throw StoreError("image cache: malformed layout '" + text + "'");
  if ((l.bits != 8 && l.bits != 16) || l.image_size < 1 || l.temp_path.empty())
    throw StoreError("image cache: malformed layout '" + text + "'");
  return l;
}

ImageCacheFile::ImageCacheFile(const std::string& path, const Dataset& sets, const std::string& data_hash,
                               std::int64_t image_size, const std::string& resize, int bits)
    : writer_([&] {
        std::error_code ec;
        std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
        if (ec) throw StoreError(path + ": cannot create its folder: " + ec.message());
        return path;
      }()) {
  (void)max_sample(bits);
  writer_.attribute("/", "format", kImageCacheFormat);
  writer_.attribute("/", "pixel_bits", static_cast<std::int64_t>(bits));
  writer_.attribute("/", "data_hash", data_hash);
  writer_.attribute("/", "image_size", image_size);
  writer_.attribute("/", "resize", resize);
  layout_.temp_path = writer_.temp_path();
  layout_.bits = bits;
  layout_.image_size = image_size;
  const ImageSet* split[3] = {&sets.train, &sets.val, &sets.test};
  const auto s = static_cast<std::uint64_t>(image_size);
  for (int k = 0; k < 3; ++k) {
    const ImageSet& set = *split[k];
    const std::string g = std::string("/") + kSplitNames[k];
    const auto n = static_cast<std::uint64_t>(set.size());
    layout_.rows[k] = set.size();
    layout_.offset[k] = writer_.reserve_raw(g + "/pixels", bits, {n, s, s});
    writer_.dataset(g + "/label", std::vector<std::int32_t>(set.label.begin(), set.label.end()), {n});
    writer_.dataset(g + "/sa", std::vector<std::int32_t>(set.sa.begin(), set.sa.end()), {n});
    writer_.dataset(g + "/source", set.source);
  }
  writer_.close_for_raw_writes();
}

ImageCachePixels::ImageCachePixels(ImageCacheLayout layout) : layout_(std::move(layout)) {
  fd_ = ::open(layout_.temp_path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd_ < 0) throw StoreError(layout_.temp_path + ": cannot open the image cache being made: " + std::strerror(errno));
}

ImageCachePixels::~ImageCachePixels() {
  if (fd_ >= 0) ::close(fd_);
}

void ImageCachePixels::close() {
  // close(2) is what publishes the bytes to the renaming process on NFS (close-to-open), and
  // where NFS reports a write that failed late; on one node the page cache is shared anyway.
  // No fsync: like every result file, a cache is as durable as the file system makes a closed file.
  const int fd = fd_;
  fd_ = -1;
  if (fd >= 0 && ::close(fd) != 0)
    throw StoreError(layout_.temp_path + ": cannot finish writing the image cache: " + std::strerror(errno));
}

void ImageCachePixels::write(Split split, std::int64_t index, const float* pixels) {
  const int k = static_cast<int>(split);
  if (index < 0 || index >= layout_.rows[k])
    throw StoreError(layout_.temp_path + ": image " + std::to_string(index) + " is outside " + kSplitNames[k] + "'s " +
                     std::to_string(layout_.rows[k]) + " rows");
  const auto hw = static_cast<std::size_t>(layout_.image_size * layout_.image_size);
  const std::size_t width = layout_.bits / 8;
  std::vector<unsigned char> bytes(hw * width);
  for (std::size_t i = 0; i < hw; ++i) {
    const std::uint16_t q = quantize_pixel(pixels[i], layout_.bits);
    bytes[i * width] = static_cast<unsigned char>(q & 0xffu);  // little-endian, whatever the host
    if (width == 2) bytes[i * width + 1] = static_cast<unsigned char>(q >> 8);
  }
  auto at = static_cast<off_t>(layout_.offset[k] + static_cast<std::uint64_t>(index) * bytes.size());
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done, at + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw StoreError(layout_.temp_path + ": cannot write image " + std::to_string(index) + " of " + kSplitNames[k] +
                                 ": " + (n < 0 ? std::strerror(errno) : "no progress"));
    done += static_cast<std::size_t>(n);
  }
}

int manifest_sample_bits(const Manifest& manifest, const std::vector<std::size_t>& rows, int threads) {
  std::atomic<int> bits{8};
  std::atomic<std::size_t> next{0};
  const auto work = [&] {
    for (std::size_t k = next++; k < rows.size() && bits.load() < 16; k = next++) {
      try {
        if (image_sample_bits(manifest.rows.at(rows[k]).path) == 16) bits = 16;
      } catch (const DataError&) {  // decoding reports it, naming the row
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return bits.load();
}

void fill_image_cache(const Manifest& manifest, const std::vector<std::size_t>& rows, const DecodeOptions& options,
                      const ImageCacheLayout& layout, const std::function<void(std::int64_t done)>& progress) {
  if (options.image_size != layout.image_size)
    throw StoreError(layout.temp_path + ": made for " + std::to_string(layout.image_size) + " pixels, not " +
                     std::to_string(options.image_size));
  std::vector<RowSlot> slots;
  (void)split_rows(manifest, options.image_size, slots);
  ImageCachePixels out(layout);
  std::atomic<std::int64_t> done{0};
  decode_rows(manifest, rows, options, [&](std::size_t row, const std::vector<float>& pixels) {
    out.write(slots[row].split, slots[row].index, pixels.data());
    const std::int64_t d = ++done;
    if (progress) progress(d);
  });
  out.close();
}

void write_image_cache(const std::string& path, const Dataset& ds, const std::string& data_hash,
                       std::int64_t image_size, const std::string& resize, int bits) {
  ImageCacheFile file(path, ds, data_hash, image_size, resize, bits);
  {
    ImageCachePixels out(file.layout());
    const ImageSet* split[3] = {&ds.train, &ds.val, &ds.test};
    for (int k = 0; k < 3; ++k)
      for (std::int64_t i = 0; i < split[k]->size(); ++i) out.write(static_cast<Split>(k), i, split[k]->image(i));
    out.close();
  }
  file.commit();
}

ImageCacheMap::ImageCacheMap(const std::string& path, const std::string& data_hash, std::int64_t image_size,
                             const std::string& resize) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw StoreError(path + ": no image cache");
  {
    const store::H5Reader r(path);
    if (!r.has_attribute("/", "format") || r.int_attribute("/", "format") != kImageCacheFormat)
      throw StoreError(path + ": not an image cache of format " + std::to_string(kImageCacheFormat));
    if (r.string_attribute("/", "data_hash") != data_hash || r.int_attribute("/", "image_size") != image_size ||
        r.string_attribute("/", "resize") != resize)
      throw StoreError(path + ": the image cache was made for other data or preprocessing");
    bits_ = static_cast<int>(r.int_attribute("/", "pixel_bits"));
    (void)max_sample(bits_);
    image_size_ = image_size;
    ImageSet* sets[3] = {&tables_.train, &tables_.val, &tables_.test};
    for (int s = 0; s < 3; ++s) {
      const std::string g = std::string("/") + kSplitNames[s];
      const auto extent = r.raw_extent(g + "/pixels");
      if (extent.element_size * 8 != static_cast<std::size_t>(bits_) || extent.dims.size() != 3 ||
          extent.dims[1] != static_cast<std::uint64_t>(image_size) || extent.dims[2] != static_cast<std::uint64_t>(image_size))
        throw StoreError(path + ": " + g + "/pixels does not hold " + std::to_string(bits_) + "-bit images of " +
                         std::to_string(image_size) + "x" + std::to_string(image_size));
      rows_[s] = static_cast<std::int64_t>(extent.dims[0]);
      offset_[s] = extent.offset;
      length_ = std::max<std::size_t>(length_, static_cast<std::size_t>(extent.offset + extent.bytes));
      ImageSet& set = *sets[s];
      std::vector<std::uint64_t> dims;
      set.height = set.width = image_size;
      for (const auto v : r.doubles(g + "/label", dims)) set.label.push_back(static_cast<int>(v));
      for (const auto v : r.doubles(g + "/sa", dims)) set.sa.push_back(static_cast<int>(v));
      set.source = r.strings(g + "/source");
      set.origin_split = s;
      for (std::int64_t i = 0; i < static_cast<std::int64_t>(extent.dims[0]); ++i) set.origin.push_back(i);
      if (set.size() != rows_[s]) throw StoreError(path + ": " + g + " has " + std::to_string(set.size()) + " labels for " +
                                                   std::to_string(rows_[s]) + " images");
    }
  }
  if (length_ == 0) return;  // no images at all
  if (std::filesystem::file_size(path, ec) < length_ || ec) throw StoreError(path + ": the image cache is truncated");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw StoreError(path + ": cannot open the image cache: " + std::strerror(errno));
  void* base = ::mmap(nullptr, length_, PROT_READ, MAP_SHARED, fd, 0);
  const int map_errno = errno;
  ::close(fd);  // the mapping keeps the file
  if (base == MAP_FAILED) throw StoreError(path + ": cannot map the image cache: " + std::strerror(map_errno));
  base_ = static_cast<const unsigned char*>(base);
}

ImageCacheMap::~ImageCacheMap() {
  if (base_ != nullptr) ::munmap(const_cast<unsigned char*>(base_), length_);
}

void ImageCacheMap::read(Split split, std::int64_t i, float* out) const {
  const int k = static_cast<int>(split);
  if (i < 0 || i >= rows_[k]) throw std::out_of_range("image cache: image " + std::to_string(i) + " of " + kSplitNames[k]);
  const auto hw = static_cast<std::size_t>(image_size_ * image_size_);
  const std::size_t width = static_cast<std::size_t>(bits_ / 8);
  const unsigned char* p = base_ + offset_[k] + static_cast<std::size_t>(i) * hw * width;
  const float m = static_cast<float>(max_sample(bits_));
  if (width == 1) {
    for (std::size_t j = 0; j < hw; ++j) out[j] = static_cast<float>(p[j]) / m;
  } else {
    for (std::size_t j = 0; j < hw; ++j) out[j] = static_cast<float>(p[2 * j] | (p[2 * j + 1] << 8)) / m;  // little-endian
  }
}

Dataset read_image_cache(const std::string& path, const std::string& data_hash, std::int64_t image_size,
                         const std::string& resize) {
  const ImageCacheMap map(path, data_hash, image_size, resize);
  Dataset ds = map.tables();
  ImageSet* sets[3] = {&ds.train, &ds.val, &ds.test};
  const auto hw = static_cast<std::size_t>(image_size * image_size);
  for (int s = 0; s < 3; ++s) {
    ImageSet& set = *sets[s];
    set.pixels.resize(static_cast<std::size_t>(set.size()) * hw);
    for (std::int64_t i = 0; i < set.size(); ++i) map.read(static_cast<Split>(s), i, set.pixels.data() + static_cast<std::size_t>(i) * hw);
    set.origin.clear();  // the pixels are in memory now
    set.origin_split = -1;
    validate(set, path + " " + kSplitNames[s]);
  }
  return ds;
}

}  // namespace dne::data
