// Checked HDF5 calls and what every HDF5 entry point of the store module shares (internal to
// the store module): DNE_H5_CHECK, the one lock around HDF5, handles closed at scope exit,
// and the size checks before a read.
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <mutex>
#include <string>

namespace dne::store::detail {

/// StoreError "<context>: <HDF5's error stack> (<call> at <file>:<line>)"; the stack is cleared.
[[noreturn]] void h5_fail(const char* call, const char* file, int line, const std::string& context);

}  // namespace dne::store::detail

// Checked HDF5 call: negative return -> StoreError with file:line and HDF5's own message.
#define DNE_H5_CHECK(call, context)                                                             \
  [&]() {                                                                                       \
    auto dne_h5_result = (call);                                                                \
    if (dne_h5_result < 0) ::dne::store::detail::h5_fail(#call, __FILE__, __LINE__, (context)); \
    return dne_h5_result;                                                                       \
  }()

namespace dne::store::detail {

/// The size in bytes of an HDF5 datatype; StoreError (0 is HDF5's failure value) otherwise.
std::size_t type_size(hid_t type, const std::string& context);

/// Serialises this process's HDF5 calls. The sweep writes index.h5 from rank 0's coordinator
/// thread while rank 0's experiment writes its own file; Debian's HDF5 is built thread-safe, but
/// other builds are not, so every entry point of this module holds this lock.
std::recursive_mutex& hdf5_mutex();
struct Hdf5Lock {
  std::lock_guard<std::recursive_mutex> guard{hdf5_mutex()};
};

/// Whether a link `path` ("/a/b/c") exists under `location`. H5Lexists fails (rather than
/// answering no) when an intermediate group is missing, so every prefix is asked in turn; a real
/// failure is a StoreError naming `context`.
bool link_exists(hid_t location, const std::string& path, const std::string& context);

/// Refuses to read `bytes` of dataset `path` into memory when twice that (the buffer and HDF5's
/// conversion of it) is more than the memory available now: a corrupted dataspace can claim
/// terabytes, and with overcommit the allocation succeeds and the kernel kills the process while
/// filling it.
void require_memory_for_read(double bytes, const std::string& path);

/// Closes an HDF5 handle of any kind at scope exit.
struct H5Handle {
  hid_t id;
  explicit H5Handle(hid_t h) : id(h) {}
  ~H5Handle() {
    if (id >= 0) {
      switch (H5Iget_type(id)) {
        case H5I_FILE: H5Fclose(id); break;
        case H5I_GROUP: H5Gclose(id); break;
        case H5I_DATASET: H5Dclose(id); break;
        case H5I_DATASPACE: H5Sclose(id); break;
        case H5I_DATATYPE: H5Tclose(id); break;
        case H5I_ATTR: H5Aclose(id); break;
        case H5I_GENPROP_LST: H5Pclose(id); break;
        default: break;
      }
    }
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
};

/// Dataset `path` (open as `dset`) holding `count` values, read as `memory_bytes_each` bytes per
/// value: refused when its size is implausible. Where every value must be in the file, a
/// dataspace that claims more than the storage the file has for it is corrupt: a contiguous
/// dataset without filters once written (storage 0: never written, fill values), or a chunked
/// one with Fletcher-32 only, as this program writes them (whole). Other chunked datasets may be
/// sparse (unwritten chunks read as the fill value) or compressed: not checked. Then the read
/// must fit in memory.
void require_plausible_size(hid_t dset, double count, double memory_bytes_each, const std::string& path);

}  // namespace dne::store::detail
