// HDF5 result files: an atomic writer and a plain-text inspector.
//
// `H5Writer` writes to "<final>.tmp.<host>.<pid>" and renames to the final path only in
// `commit()`, so a reader never sees a half-written experiment; a writer destroyed without
// commit removes its temporary file. Paths like "/test/score" create intermediate groups.
// Every HDF5 call that can fail goes through DNE_H5_CHECK, which throws StoreError with the
// call, file:line and HDF5's whole error stack on one line (every frame: function, description,
// major / minor message; the system's reason, e.g. "No space left on device", first). HDF5's
// iteration callbacks only collect names; the reads happen after the walk, checked. No Torch here.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace dne::store {

/// Version of the layout documented in docs/results-format.md.
inline constexpr int kSchemaVersion = 1;

class H5Writer {
 public:
  explicit H5Writer(std::string final_path);
  ~H5Writer();
  H5Writer(const H5Writer&) = delete;
  H5Writer& operator=(const H5Writer&) = delete;

  /// Scalar attributes on an object ("/" or a group path; the group is created if needed).
  void attribute(const std::string& object, const std::string& name, const std::string& value);
  void attribute(const std::string& object, const std::string& name, double value);
  void attribute(const std::string& object, const std::string& name, std::int64_t value);

  /// Datasets with explicit dims (row-major); data.size() must equal the product of dims.
  void dataset(const std::string& path, const std::vector<float>& data, const std::vector<std::uint64_t>& dims);
  void dataset(const std::string& path, const std::vector<double>& data, const std::vector<std::uint64_t>& dims);
  void dataset(const std::string& path, const std::vector<std::int32_t>& data, const std::vector<std::uint64_t>& dims);
  void dataset(const std::string& path, const std::vector<std::int64_t>& data, const std::vector<std::uint64_t>& dims);
  /// A 1-D dataset of variable-length strings.
  void dataset(const std::string& path, const std::vector<std::string>& data);

  /// An HDF5 external link at `link_path` to `target_object` in `target_file` (relative paths
  /// resolve against the linking file's folder).
  void external_link(const std::string& link_path, const std::string& target_file,
                     const std::string& target_object);

  /// A contiguous, unfiltered dataset of unsigned `bits`-bit integers (8 or 16, little-endian),
  /// allocated now and never filled by HDF5: its N = prod(dims) values are written later as raw
  /// bytes at the returned file offset (by any process, with pwrite on temp_path(), after
  /// close_for_raw_writes()). Returns 0 for an empty dataset (nothing to write).
  std::uint64_t reserve_raw(const std::string& path, int bits, const std::vector<std::uint64_t>& dims);
  /// Flush and close the HDF5 file, leaving it at temp_path() for raw writes into reserved
  /// datasets; commit() then only renames it. Nothing else may be written through this writer.
  void close_for_raw_writes();
  /// Where the file is until commit() ("<final>.tmp.<host>.<pid>").
  const std::string& temp_path() const { return temp_path_; }

  /// Push everything written so far to the file system (H5Fflush): what is left for commit()
  /// is the final metadata, the close and the rename (e.g. so that timings written after a flush
  /// cover the writing of the data).
  void flush();
  /// Close and atomically rename to the final path.
  void commit();
  const std::string& final_path() const { return final_path_; }

 private:
  std::int64_t ensure_group(const std::string& path);  // returns an open hid_t (caller closes)
  void write_raw(const std::string& path, std::int64_t mem_type, const void* data,
                 const std::vector<std::uint64_t>& dims, std::size_t count);

  std::string final_path_, temp_path_;
  std::int64_t file_ = -1;  // hid_t
  bool committed_ = false;
};

/// Read access to any HDF5 file by object path: attributes and numeric datasets. The file is
/// opened read-only in the constructor; a missing, non-HDF5 or truncated file is a StoreError
/// naming the path, and so is a missing object or an attribute of the wrong class.
class H5Reader {
 public:
  explicit H5Reader(std::string path);
  ~H5Reader();
  H5Reader(const H5Reader&) = delete;
  H5Reader& operator=(const H5Reader&) = delete;

  const std::string& path() const { return path_; }
  /// Whether a group or dataset exists at `object` ("/a/b").
  bool exists(const std::string& object) const;
  bool has_attribute(const std::string& object, const std::string& name) const;
  std::string string_attribute(const std::string& object, const std::string& name) const;
  std::int64_t int_attribute(const std::string& object, const std::string& name) const;
  double double_attribute(const std::string& object, const std::string& name) const;
  /// A numeric dataset converted to float32 / float64; `dims` receives its shape.
  std::vector<float> floats(const std::string& dataset, std::vector<std::uint64_t>& dims) const;
  /// Whether `dataset` has stored values: false for one declared but never written, whose reads
  /// would return HDF5's fill value. (HDF5 cannot tell a partly written chunked dataset apart:
  /// with a filter, a fully written one also reports "partly allocated".)
  bool has_stored_data(const std::string& dataset) const;
  std::vector<double> doubles(const std::string& dataset, std::vector<std::uint64_t>& dims) const;
  /// Where a contiguous, unfiltered dataset of unsigned integers lies in the file, for reading
  /// it without HDF5 (pread, mmap): its byte offset, its element size in bytes, its shape.
  /// StoreError naming the dataset if it is chunked, filtered, not allocated or of another type.
  struct RawExtent {
    std::uint64_t offset = 0, bytes = 0;
    std::size_t element_size = 0;
    std::vector<std::uint64_t> dims;
  };
  RawExtent raw_extent(const std::string& dataset) const;
  /// A 1-D dataset of variable-length strings (as H5Writer writes them).
  std::vector<std::string> strings(const std::string& dataset) const;
  /// Names of the links in group `group`, in name order.
  std::vector<std::string> children(const std::string& group) const;

 private:
  std::string path_;
  std::int64_t file_ = -1;  // hid_t
};

/// Human-readable listing of every group, dataset (shape, type, small values) and attribute.
std::string inspect(const std::string& path);

/// What the sweep index needs from a finished experiment file.
struct ExperimentRecord {
  std::string id, status;                 // root attributes
  std::map<std::string, double> metrics;  // /metrics
  double wall_s = std::numeric_limits<double>::quiet_NaN();  // /timings@total_s
  std::int64_t queries = -1;              // /provenance@queries
  int ranks = 0;                          // /provenance@group_size
};

/// Read an experiment file's record; StoreError if it cannot be opened.
ExperimentRecord read_experiment_record(const std::string& path);

/// Current UTC time as ISO 8601 ("2026-11-23T10:40:00Z"); thread-safe (gmtime_r).
std::string now_iso8601();

/// Read every dataset of `path` whole; StoreError "<path> is corrupt: dataset /x cannot be read:
/// ..." if one fails (a Fletcher-32 checksum mismatch, a truncated file, a broken structure).
/// Result files written since the checksums were added carry one per non-empty dataset; older
/// files are checked for readability only.
void verify_file(const std::string& path);

/// Called first in main: HDF5 does not run its own clean-up at exit. After a write fails (a full
/// disk), HDF5 1.10 cannot close the file, and its exit-time clean-up of that half-closed file
/// crashed the process (SIGSEGV) after the error had been reported; the process's own handles are
/// all closed by their owners before exit.
void skip_hdf5_cleanup_at_exit();

/// The HDF5 library's version, "1.10.8".
std::string hdf5_version();

/// Read a root attribute as a string ("" if absent); StoreError if the file cannot be opened.
std::string read_root_string_attribute(const std::string& path, const std::string& name);

}  // namespace dne::store
