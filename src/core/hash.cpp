// FNV-1a-64 and file fingerprints (see hash.hpp).
#include "dne/core/hash.hpp"

#include <sys/stat.h>
#include <zlib.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "dne/core/errors.hpp"

namespace dne {
namespace {

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

File open_for_reading(const std::string& path) {
  File file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) throw DataError(path + ": cannot open");
  return file;
}

/// Calls `chunk(data, n)` for every block of the file's bytes; returns the byte count.
template <class Chunk>
std::uint64_t for_each_block(const std::string& path, Chunk chunk) {
  const auto file = open_for_reading(path);
  std::vector<unsigned char> buffer(1 << 20);
  std::uint64_t total = 0;
  for (;;) {
    const std::size_t n = std::fread(buffer.data(), 1, buffer.size(), file.get());
    if (n > 0) chunk(buffer.data(), n);
    total += n;
    if (n < buffer.size()) break;
  }
  if (std::ferror(file.get())) throw DataError(path + ": read error");
  return total;
}

}  // namespace

std::uint64_t fnv1a64(const void* data, std::size_t bytes, std::uint64_t state) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) {
    state ^= p[i];
    state *= 0x100000001b3ull;
  }
  return state;
}

std::uint64_t fnv1a64(const std::string& text) { return fnv1a64(text.data(), text.size()); }

std::string hex16(std::uint64_t value) {
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(value));
  return out;
}

std::string file_fingerprint(const std::string& path, FileFingerprint how) {
  if (how == FileFingerprint::kStat) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw DataError(path + ": cannot read its size and time");
    const auto ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
    return "stat:" + std::to_string(static_cast<long long>(st.st_size)) + ":" + std::to_string(ns);
  }
  uLong crc = crc32_z(0L, Z_NULL, 0);
  const auto size = for_each_block(path, [&crc](const unsigned char* data, std::size_t n) { crc = crc32_z(crc, data, n); });
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08lx", static_cast<unsigned long>(crc));
  return std::string("crc32:") + hex + ":" + std::to_string(size);
}

std::string file_content_hash(const std::string& path) {
  std::uint64_t h = kFnvOffset;
  for_each_block(path, [&h](const unsigned char* data, std::size_t n) { h = fnv1a64(data, n, h); });
  return hex16(h);
}

}  // namespace dne
