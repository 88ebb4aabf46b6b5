// Content hashes: the one FNV-1a-64 implementation (experiment ids, FM files, data sets) and the
// per-file fingerprints that put a data set's images into an experiment id.
//
// FNV-1a-64 is used for identity, not security: it is stable across platforms and releases, so
// an id written today means the same inputs tomorrow. Image files are fingerprinted with CRC-32
// (zlib) over their bytes: a CRC detects every change confined to 32 consecutive bits, so a
// changed byte always changes it, and zlib computes it at memory speed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace dne {

inline constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ull;

/// FNV-1a-64 of `bytes` bytes at `data`, continuing from `state` (start with kFnvOffset).
std::uint64_t fnv1a64(const void* data, std::size_t bytes, std::uint64_t state = kFnvOffset);
/// FNV-1a-64 of a string.
std::uint64_t fnv1a64(const std::string& text);

/// 16 lower-case hex digits.
std::string hex16(std::uint64_t value);

/// How a file enters a content hash: its bytes (CRC-32 and size) or, cheaper, its size and
/// modification time (changes whenever the file is rewritten, not when it is copied with its
/// times kept).
enum class FileFingerprint { kContent, kStat };

/// "crc32:<8 hex>:<size>" or "stat:<size>:<mtime ns>" of the file at `path`. Throws
/// dne::DataError naming the path if it cannot be read.
std::string file_fingerprint(const std::string& path, FileFingerprint how);

/// FNV-1a-64 (hex) of a whole file's bytes. Throws dne::DataError naming the path.
std::string file_content_hash(const std::string& path);

}  // namespace dne
