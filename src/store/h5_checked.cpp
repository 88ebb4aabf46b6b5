// Checked HDF5 calls, the HDF5 lock and the size checks before a read (see h5_checked.hpp);
// the HDF5 library's version and exit-time clean-up (see result_file.hpp).
#include "dne/store/h5_checked.hpp"

#include <sstream>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/core/system_memory.hpp"
#include "dne/store/result_file.hpp"

namespace dne::store {
namespace detail {
namespace {

/// H5Ewalk2 callback: one line per frame of HDF5's error stack, "#n function(): description
/// [major / minor]", innermost first (as HighFive keeps the whole chain).
herr_t collect_error(unsigned n, const H5E_error2_t* err, void* out) noexcept try {
  char major[160] = "", minor[160] = "";
  H5Eget_msg(err->maj_num, nullptr, major, sizeof major);
  H5Eget_msg(err->min_num, nullptr, minor, sizeof minor);
  std::string frame = "#" + std::to_string(n) + " " + (err->func_name != nullptr ? err->func_name : "?") + "(): " +
                      (err->desc != nullptr ? err->desc : "") + " [" + major + " / " + minor + "]";
  for (auto& c : frame)
    if (c == '\n' || c == '\r') c = ' ';
  static_cast<std::vector<std::string>*>(out)->push_back(frame);
  return 0;
} catch (...) {  // nothing may be thrown through HDF5's C frames
  return -1;
}

/// HDF5's whole error stack on one line, every frame with its major and minor message; the
/// system's reason (e.g. "No space left on device", which HDF5 puts inside a frame's
/// description) first when a frame carries one. The stack is cleared.
std::string h5_message() {
  std::vector<std::string> frames;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_error, &frames);
  H5Eclear2(H5E_DEFAULT);
  if (frames.empty()) return "unknown HDF5 error (the error stack is empty)";
  std::string stack;
  for (const auto& f : frames) stack += (stack.empty() ? "" : "; ") + f;
  const std::string marker = "error message = '";
  for (const auto& f : frames) {
    const auto at = f.find(marker);
    if (at == std::string::npos) continue;
    const auto end = f.find('\'', at + marker.size());
    return f.substr(at + marker.size(), end == std::string::npos ? std::string::npos : end - at - marker.size()) +
           " (HDF5: " + stack + ")";
  }
  return "HDF5: " + stack;
}

}  // namespace

[[noreturn]] void h5_fail(const char* call, const char* file, int line, const std::string& context) {
  std::ostringstream out;
  out << context << ": " << h5_message() << " (" << call << " at " << file << ":" << line << ")";
  throw StoreError(out.str());
}

std::size_t type_size(hid_t type, const std::string& context) {
  const std::size_t bytes = H5Tget_size(type);
  if (bytes == 0) h5_fail("H5Tget_size", __FILE__, __LINE__, context);
  return bytes;
}

std::recursive_mutex& hdf5_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}

bool link_exists(hid_t location, const std::string& path, const std::string& context) {
  if (path == "/" || path.empty()) return true;
  std::size_t pos = 0;
  do {
    pos = path.find('/', pos + 1);
    const std::string prefix = path.substr(0, pos);
    if (DNE_H5_CHECK(H5Lexists(location, prefix.c_str(), H5P_DEFAULT), context + ": look up " + prefix) <= 0) return false;
  } while (pos != std::string::npos);
  return true;
}

void require_memory_for_read(double bytes, const std::string& path) {
  if (2.0 * bytes > available_memory_bytes())
    throw StoreError("dataset " + path + " claims " + std::to_string(bytes / 1e9) + " GB, more than the memory " +
                     "available now allows to read: the file is corrupt, or too large to read whole here");
}

void require_plausible_size(hid_t dset, double count, double memory_bytes_each, const std::string& path) {
  H5Handle type(DNE_H5_CHECK(H5Dget_type(dset), path));
  if (DNE_H5_CHECK(H5Tis_variable_str(type.id), path) <= 0 && DNE_H5_CHECK(H5Tget_class(type.id), path) != H5T_VLEN) {
    H5Handle create(DNE_H5_CHECK(H5Dget_create_plist(dset), path));
    const int filters = DNE_H5_CHECK(H5Pget_nfilters(create.id), path);
    bool other_filter = false, fletcher = false;
    for (int i = 0; i < filters; ++i) {
      unsigned flags = 0, config = 0, values[8] = {};
      std::size_t n_values = 8;
      char name[64] = "";
      const H5Z_filter_t id = H5Pget_filter2(create.id, static_cast<unsigned>(i), &flags, &n_values, values, sizeof name, name, &config);
      (id == H5Z_FILTER_FLETCHER32 ? fletcher : other_filter) = true;
    }
    const H5D_layout_t layout = DNE_H5_CHECK(H5Pget_layout(create.id), path);
    const bool whole = !other_filter && ((layout == H5D_CONTIGUOUS && !fletcher) || (layout == H5D_CHUNKED && fletcher));
    const double stored = static_cast<double>(H5Dget_storage_size(dset));  // 0: never written (fill values)
    const double claimed = count * static_cast<double>(type_size(type.id, path));
    if (whole && stored > 0.0 && stored < claimed)
      throw StoreError("dataset " + path + " claims " + std::to_string(static_cast<long long>(count)) + " values (" +
                       std::to_string(static_cast<long long>(claimed)) + " bytes) but the file stores " +
                       std::to_string(static_cast<long long>(stored)) + " bytes for it: the file is corrupt");
  }
  require_memory_for_read(count * memory_bytes_each, path);
}

}  // namespace detail

using detail::Hdf5Lock;

void skip_hdf5_cleanup_at_exit() { H5dont_atexit(); }

std::string hdf5_version() {
  const Hdf5Lock lock;
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release);
}

}  // namespace dne::store
