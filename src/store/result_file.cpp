// HDF5 writer and inspector (see result_file.hpp).
#include "dne/store/result_file.hpp"

#include "dne/core/text.hpp"

#include <hdf5.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>

#include "dne/core/errors.hpp"
#include "dne/core/host.hpp"
#include "dne/core/system_memory.hpp"

namespace dne::store {
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

[[noreturn]] void h5_fail(const char* call, const char* file, int line, const std::string& context) {
  std::ostringstream out;
  out << context << ": " << h5_message() << " (" << call << " at " << file << ":" << line << ")";
  throw StoreError(out.str());
}

}  // namespace

// Checked HDF5 call: negative return -> StoreError with file:line and HDF5's own message.
#define DNE_H5_CHECK(call, context)                                          \
  [&]() {                                                                    \
    auto dne_h5_result = (call);                                             \
    if (dne_h5_result < 0) h5_fail(#call, __FILE__, __LINE__, (context));    \
    return dne_h5_result;                                                    \
  }()

namespace {

/// The size in bytes of an HDF5 datatype; StoreError (0 is HDF5's failure value) otherwise.
std::size_t type_size(hid_t type, const std::string& context) {
  const std::size_t bytes = H5Tget_size(type);
  if (bytes == 0) h5_fail("H5Tget_size", __FILE__, __LINE__, context);
  return bytes;
}

/// Serialises this process's HDF5 calls. The sweep writes index.h5 from rank 0's coordinator
/// thread while rank 0's experiment writes its own file; Debian's HDF5 is built thread-safe, but
/// other builds are not, so every entry point of this module holds this lock.
std::recursive_mutex& hdf5_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}
struct Hdf5Lock {
  std::lock_guard<std::recursive_mutex> guard{hdf5_mutex()};
};

/// Whether a link `path` ("/a/b/c") exists under `location`. H5Lexists fails (rather than
/// answering no) when an intermediate group is missing, so every prefix is asked in turn; a real
/// failure is a StoreError naming `context`.
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

/// Refuses to read `bytes` of dataset `path` into memory when twice that (the buffer and HDF5's
/// conversion of it) is more than the memory available now: a corrupted dataspace can claim
/// terabytes, and with overcommit the allocation succeeds and the kernel kills the process while
/// filling it.
void require_memory_for_read(double bytes, const std::string& path) {
  if (2.0 * bytes > available_memory_bytes())
    throw StoreError("dataset " + path + " claims " + std::to_string(bytes / 1e9) + " GB, more than the memory " +
                     "available now allows to read: the file is corrupt, or too large to read whole here");
}

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

}  // namespace

H5Writer::H5Writer(std::string final_path) : final_path_(std::move(final_path)) {
  const Hdf5Lock lock;
  temp_path_ = final_path_ + ".tmp." + host_name() + "." + std::to_string(getpid());
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported through exceptions
  file_ = DNE_H5_CHECK(H5Fcreate(temp_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                       "cannot create '" + temp_path_ + "'");
}

H5Writer::~H5Writer() {
  const Hdf5Lock lock;
  if (file_ >= 0) H5Fclose(static_cast<hid_t>(file_));
  if (!committed_) std::remove(temp_path_.c_str());
}

std::int64_t H5Writer::ensure_group(const std::string& path) {
  const Hdf5Lock lock;
  if (path == "/" || path.empty()) return DNE_H5_CHECK(H5Gopen2(file_, "/", H5P_DEFAULT), path);
  if (link_exists(file_, path, temp_path_))
    return DNE_H5_CHECK(H5Gopen2(file_, path.c_str(), H5P_DEFAULT), "open group " + path);
  H5Handle lcpl(DNE_H5_CHECK(H5Pcreate(H5P_LINK_CREATE), "create group " + path));
  DNE_H5_CHECK(H5Pset_create_intermediate_group(lcpl.id, 1), "create group " + path);
  return DNE_H5_CHECK(H5Gcreate2(file_, path.c_str(), lcpl.id, H5P_DEFAULT, H5P_DEFAULT),
                      "create group " + path);
}

namespace {
void write_attribute(hid_t object, const std::string& name, hid_t type, const void* value,
                     const std::string& context) {
  H5Handle space(DNE_H5_CHECK(H5Screate(H5S_SCALAR), context));
  if (DNE_H5_CHECK(H5Aexists(object, name.c_str()), context) > 0) DNE_H5_CHECK(H5Adelete(object, name.c_str()), context);
  H5Handle attr(DNE_H5_CHECK(H5Acreate2(object, name.c_str(), type, space.id, H5P_DEFAULT, H5P_DEFAULT), context));
  DNE_H5_CHECK(H5Awrite(attr.id, type, value), context);
}
}  // namespace

void H5Writer::attribute(const std::string& object, const std::string& name,
                             const std::string& value) {
  const Hdf5Lock lock;
  H5Handle group(ensure_group(object));
  H5Handle type(DNE_H5_CHECK(H5Tcopy(H5T_C_S1), name));
  DNE_H5_CHECK(H5Tset_size(type.id, H5T_VARIABLE), name);
  DNE_H5_CHECK(H5Tset_cset(type.id, H5T_CSET_UTF8), name);
  const std::string text = valid_utf8(value);  // the type says UTF-8: make it true
  const char* ptr = text.c_str();
  write_attribute(group.id, name, type.id, &ptr, "attribute " + object + "@" + name);
}

void H5Writer::attribute(const std::string& object, const std::string& name, double value) {
  const Hdf5Lock lock;
  H5Handle group(ensure_group(object));
  write_attribute(group.id, name, H5T_NATIVE_DOUBLE, &value, "attribute " + object + "@" + name);
}

void H5Writer::attribute(const std::string& object, const std::string& name,
                             std::int64_t value) {
  const Hdf5Lock lock;
  H5Handle group(ensure_group(object));
  write_attribute(group.id, name, H5T_NATIVE_INT64, &value, "attribute " + object + "@" + name);
}

void H5Writer::write_raw(const std::string& path, std::int64_t mem_type, const void* data,
                             const std::vector<std::uint64_t>& dims, std::size_t count) {
  const Hdf5Lock lock;
  std::uint64_t product = 1;
  for (auto d : dims) product *= d;
  if (product != count)
    throw StoreError("dataset " + path + ": " + std::to_string(count) +
                     " values do not fill the given shape");
  const auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) H5Handle parent(ensure_group(path.substr(0, slash)));
  std::vector<hsize_t> hdims(dims.begin(), dims.end());
  H5Handle space(DNE_H5_CHECK(H5Screate_simple(static_cast<int>(hdims.size()), hdims.data(), nullptr), path));
  // Every non-empty numeric dataset is one chunk with a Fletcher-32 checksum: a corrupted byte
  // makes its read fail (verify_file), in this program and in any other HDF5 reader. (HDF5
  // allows no filter on variable-length strings.)
  H5Handle create(DNE_H5_CHECK(H5Pcreate(H5P_DATASET_CREATE), path));
  if (count > 0 && !hdims.empty() && DNE_H5_CHECK(H5Tis_variable_str(static_cast<hid_t>(mem_type)), path) <= 0) {
    DNE_H5_CHECK(H5Pset_chunk(create.id, static_cast<int>(hdims.size()), hdims.data()), "chunk " + path);
    DNE_H5_CHECK(H5Pset_fletcher32(create.id), "checksum " + path);
  }
  H5Handle dset(DNE_H5_CHECK(H5Dcreate2(file_, path.c_str(), mem_type, space.id, H5P_DEFAULT,
                                        create.id, H5P_DEFAULT), "create dataset " + path));
  if (count > 0)
    DNE_H5_CHECK(H5Dwrite(dset.id, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "write " + path);
}

void H5Writer::dataset(const std::string& path, const std::vector<float>& data,
                           const std::vector<std::uint64_t>& dims) {
  write_raw(path, H5T_NATIVE_FLOAT, data.data(), dims, data.size());
}
void H5Writer::dataset(const std::string& path, const std::vector<double>& data,
                           const std::vector<std::uint64_t>& dims) {
  write_raw(path, H5T_NATIVE_DOUBLE, data.data(), dims, data.size());
}
void H5Writer::dataset(const std::string& path, const std::vector<std::int32_t>& data,
                           const std::vector<std::uint64_t>& dims) {
  write_raw(path, H5T_NATIVE_INT32, data.data(), dims, data.size());
}
void H5Writer::dataset(const std::string& path, const std::vector<std::int64_t>& data,
                           const std::vector<std::uint64_t>& dims) {
  write_raw(path, H5T_NATIVE_INT64, data.data(), dims, data.size());
}
void H5Writer::external_link(const std::string& link_path, const std::string& target_file,
                                 const std::string& target_object) {
  const Hdf5Lock lock;
  const auto slash = link_path.rfind('/');
  if (slash != std::string::npos && slash > 0) H5Handle parent(ensure_group(link_path.substr(0, slash)));
  DNE_H5_CHECK(H5Lcreate_external(target_file.c_str(), target_object.c_str(), file_, link_path.c_str(),
                                  H5P_DEFAULT, H5P_DEFAULT),
               "external link " + link_path);
}
void H5Writer::dataset(const std::string& path, const std::vector<std::string>& data) {
  const Hdf5Lock lock;
  H5Handle type(DNE_H5_CHECK(H5Tcopy(H5T_C_S1), path));
  DNE_H5_CHECK(H5Tset_size(type.id, H5T_VARIABLE), path);
  DNE_H5_CHECK(H5Tset_cset(type.id, H5T_CSET_UTF8), path);
  std::vector<std::string> texts;  // the type says UTF-8: make it true
  for (const auto& s : data) texts.push_back(valid_utf8(s));
  std::vector<const char*> ptrs;
  for (const auto& s : texts) ptrs.push_back(s.c_str());
  write_raw(path, type.id, ptrs.data(), {data.size()}, data.size());
}

std::uint64_t H5Writer::reserve_raw(const std::string& path, int bits, const std::vector<std::uint64_t>& dims) {
  if (bits != 8 && bits != 16) throw StoreError("dataset " + path + ": raw samples must be 8 or 16 bits, not " + std::to_string(bits));
  if (file_ < 0) throw StoreError("dataset " + path + ": " + temp_path_ + " is already closed");
  const Hdf5Lock lock;
  const auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) H5Handle parent(ensure_group(path.substr(0, slash)));
  std::vector<hsize_t> hdims(dims.begin(), dims.end());
  hsize_t count = 1;
  for (const auto d : hdims) count *= d;
  H5Handle space(DNE_H5_CHECK(H5Screate_simple(static_cast<int>(hdims.size()), hdims.data(), nullptr), path));
  H5Handle create(DNE_H5_CHECK(H5Pcreate(H5P_DATASET_CREATE), path));
  DNE_H5_CHECK(H5Pset_layout(create.id, H5D_CONTIGUOUS), "layout " + path);
  DNE_H5_CHECK(H5Pset_alloc_time(create.id, H5D_ALLOC_TIME_EARLY), "allocation " + path);
  DNE_H5_CHECK(H5Pset_fill_time(create.id, H5D_FILL_TIME_NEVER), "fill " + path);
  const hid_t type = bits == 8 ? H5T_STD_U8LE : H5T_STD_U16LE;
  H5Handle dset(DNE_H5_CHECK(H5Dcreate2(file_, path.c_str(), type, space.id, H5P_DEFAULT, create.id, H5P_DEFAULT),
                             "create dataset " + path));
  if (count == 0) return 0;
  const haddr_t offset = H5Dget_offset(dset.id);
  if (offset == HADDR_UNDEF) throw StoreError("dataset " + path + " in '" + temp_path_ + "': HDF5 gave no file offset");
  return static_cast<std::uint64_t>(offset);
}

void H5Writer::close_for_raw_writes() {
  const Hdf5Lock lock;
  if (file_ < 0) return;
  DNE_H5_CHECK(H5Fflush(file_, H5F_SCOPE_GLOBAL), "flush " + temp_path_);
  DNE_H5_CHECK(H5Fclose(file_), "close " + temp_path_);
  file_ = -1;
}

void H5Writer::flush() {
  const Hdf5Lock lock;
  DNE_H5_CHECK(H5Fflush(file_, H5F_SCOPE_GLOBAL), "flush " + temp_path_);
}

void H5Writer::commit() {
  const Hdf5Lock lock;
  if (file_ >= 0) {
    DNE_H5_CHECK(H5Fflush(file_, H5F_SCOPE_GLOBAL), "flush " + temp_path_);
    DNE_H5_CHECK(H5Fclose(file_), "close " + temp_path_);
    file_ = -1;
  }
  std::error_code ec;
  std::filesystem::rename(temp_path_, final_path_, ec);
  if (ec) throw StoreError("cannot rename '" + temp_path_ + "' to '" + final_path_ + "': " + ec.message());
  committed_ = true;
}

namespace {

// The walks below only collect names inside HDF5's callbacks (nothing there can fail or throw
// through HDF5's C frames); every read happens after the walk, through DNE_H5_CHECK.

/// Callback of H5Aiterate2 (Info = H5A_info_t) and H5Literate (H5L_info_t): the names in order.
template <class Info>
herr_t collect_name(hid_t, const char* name, const Info*, void* data) noexcept {
  try {
    static_cast<std::vector<std::string>*>(data)->push_back(name);
    return 0;
  } catch (...) {  // nothing may be thrown through HDF5's C frames
    return -1;
  }
}

/// Names of the attributes of an open object, in name order.
std::vector<std::string> attribute_names(hid_t object, const std::string& context) {
  std::vector<std::string> names;
  DNE_H5_CHECK(H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_name<H5A_info_t>, &names),
               "list the attributes of " + context);
  return names;
}

struct ObjectName {
  std::string path;
  H5O_type_t type;
};

herr_t collect_object(hid_t, const char* name, const H5O_info_t* info, void* data) noexcept {
  try {
    static_cast<std::vector<ObjectName>*>(data)->push_back(
        {std::string(name) == "." ? "/" : "/" + std::string(name), info->type});
    return 0;
  } catch (...) {  // nothing may be thrown through HDF5's C frames
    return -1;
  }
}

/// Every object of an open file ("/" first), in name order.
std::vector<ObjectName> object_names(hid_t file, const std::string& context) {
  std::vector<ObjectName> objects;
  DNE_H5_CHECK(H5Ovisit(file, H5_INDEX_NAME, H5_ITER_INC, collect_object, &objects), "walk " + context);
  return objects;
}

/// An attribute's value as inspect prints it (strings quoted, multi-line strings indented).
std::string attribute_text(hid_t attr, const std::string& context) {
  H5Handle type(DNE_H5_CHECK(H5Aget_type(attr), context));
  const H5T_class_t cls = DNE_H5_CHECK(H5Tget_class(type.id), context);
  H5Handle space(DNE_H5_CHECK(H5Aget_space(attr), context));
  const hssize_t points = DNE_H5_CHECK(H5Sget_simple_extent_npoints(space.id), context);
  if (points != 1) return "(" + std::to_string(points) + " values)";  // each read below holds one value
  std::ostringstream out;
  if (cls == H5T_STRING) {
    std::string text;
    if (DNE_H5_CHECK(H5Tis_variable_str(type.id), context) > 0) {
      char* value = nullptr;
      H5Handle mem(DNE_H5_CHECK(H5Tcopy(H5T_C_S1), context));
      DNE_H5_CHECK(H5Tset_size(mem.id, H5T_VARIABLE), context);
      DNE_H5_CHECK(H5Tset_cset(mem.id, DNE_H5_CHECK(H5Tget_cset(type.id), context)), context);
      DNE_H5_CHECK(H5Aread(attr, mem.id, &value), "read " + context);
      text = value != nullptr ? value : "";
      if (value != nullptr) H5free_memory(value);
    } else {  // fixed length, NUL-padded or not
      std::string fixed(type_size(type.id, context), '\0');
      DNE_H5_CHECK(H5Aread(attr, type.id, fixed.data()), "read " + context);
      text = fixed.substr(0, fixed.find('\0'));
    }
    if (text.find('\n') == std::string::npos) return "\"" + text + "\"";
    std::string indented = "|\n";
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) indented += "        " + line + "\n";
    indented.pop_back();
    return indented;
  }
  if (cls == H5T_INTEGER) {
    long long v = 0;
    DNE_H5_CHECK(H5Aread(attr, H5T_NATIVE_LLONG, &v), "read " + context);
    out << v;
  } else if (cls == H5T_FLOAT) {
    double v = 0;
    DNE_H5_CHECK(H5Aread(attr, H5T_NATIVE_DOUBLE, &v), "read " + context);
    out << v;
  } else {
    out << "(class " << cls << ")";
  }
  return out.str();
}

/// "    @name = value" for every attribute of an open object.
void print_attributes(hid_t object, const std::string& path, std::ostringstream& out) {
  for (const auto& name : attribute_names(object, path)) {
    const std::string context = "attribute " + path + "@" + name;
    H5Handle attr(DNE_H5_CHECK(H5Aopen(object, name.c_str(), H5P_DEFAULT), "open " + context));
    out << "    @" << name << " = " << attribute_text(attr.id, context) << "\n";
  }
}

/// One dataset's line: path, type, shape, and min / max / mean of a numeric one.
void print_dataset(hid_t file, const std::string& path, std::ostringstream& out) {
  H5Handle dset(DNE_H5_CHECK(H5Dopen2(file, path.c_str(), H5P_DEFAULT), "open dataset " + path));
  H5Handle space(DNE_H5_CHECK(H5Dget_space(dset.id), path));
  H5Handle type(DNE_H5_CHECK(H5Dget_type(dset.id), path));
  const int rank = DNE_H5_CHECK(H5Sget_simple_extent_ndims(space.id), path);
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0) DNE_H5_CHECK(H5Sget_simple_extent_dims(space.id, dims.data(), nullptr), path);
  const H5T_class_t cls = DNE_H5_CHECK(H5Tget_class(type.id), path);
  const std::size_t bytes = type_size(type.id, path);
  out << path << "  " << (cls == H5T_FLOAT ? "float" : cls == H5T_INTEGER ? "int" : cls == H5T_STRING ? "string" : "other")
      << bytes * 8 << " (";
  hsize_t count = 1;
  for (int i = 0; i < rank; ++i) {
    out << (i ? ", " : "") << dims[static_cast<std::size_t>(i)];
    count *= dims[static_cast<std::size_t>(i)];
  }
  out << ")";
  if ((cls == H5T_FLOAT || cls == H5T_INTEGER) && count > 0) {
    require_plausible_size(dset.id, static_cast<double>(count), sizeof(double), path);
    std::vector<double> values(count);
    DNE_H5_CHECK(H5Dread(dset.id, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), "read " + path);
    double lo = values[0], hi = values[0], sum = 0;
    for (double v : values) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      sum += v;
    }
    out << "  min " << lo << " max " << hi << " mean " << sum / static_cast<double>(count);
  }
  out << "\n";
  print_attributes(dset.id, path, out);
}

/// A root attribute as text ("" if absent; strings without their quotes).
std::string root_string(hid_t file, const std::string& name) {
  if (DNE_H5_CHECK(H5Aexists(file, name.c_str()), "attribute /@" + name) <= 0) return "";
  H5Handle attr(DNE_H5_CHECK(H5Aopen(file, name.c_str(), H5P_DEFAULT), name));
  std::string text = attribute_text(attr.id, "attribute /@" + name);
  if (text.size() >= 2 && text.front() == '"') text = text.substr(1, text.size() - 2);
  return text;
}

}  // namespace

std::string inspect(const std::string& path) {
  const Hdf5Lock lock;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  if (!std::filesystem::is_regular_file(path)) throw StoreError(path + ": no such file");
  verify_file(path);  // every dataset checked before the walk that prints it
  if (H5Fis_hdf5(path.c_str()) <= 0) throw StoreError(path + ": not an HDF5 file");
  H5Handle file(DNE_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "open " + path));
  std::ostringstream out;
  out << path << "\n";
  for (const auto& object : object_names(file.id, path)) {
    if (object.type == H5O_TYPE_DATASET) {
      print_dataset(file.id, object.path, out);
    } else if (object.type == H5O_TYPE_GROUP) {
      out << object.path << (object.path == "/" ? "" : "/") << "\n";
      H5Handle group(DNE_H5_CHECK(H5Gopen2(file.id, object.path.c_str(), H5P_DEFAULT), "open group " + object.path));
      print_attributes(group.id, object.path, out);
    }
  }
  return out.str();
}

namespace {

/// Read dataset `path` whole (the Fletcher-32 checksums are checked on read); StoreError naming
/// the dataset and HDF5's stack if it cannot be opened or read, or claims an implausible size.
void verify_dataset(hid_t file, const std::string& path) {
  H5Handle dset(DNE_H5_CHECK(H5Dopen2(file, path.c_str(), H5P_DEFAULT), "dataset " + path + " cannot be opened"));
  H5Handle space(DNE_H5_CHECK(H5Dget_space(dset.id), "dataset " + path + " cannot be opened"));
  H5Handle type(DNE_H5_CHECK(H5Dget_type(dset.id), "dataset " + path + " cannot be opened"));
  H5Handle memory(DNE_H5_CHECK(H5Tget_native_type(type.id, H5T_DIR_ASCEND), "dataset " + path + " cannot be opened"));
  const hssize_t count = DNE_H5_CHECK(H5Sget_simple_extent_npoints(space.id), "dataset " + path + " cannot be opened");
  if (count == 0) return;
  const std::size_t each = type_size(memory.id, "dataset " + path);
  require_plausible_size(dset.id, static_cast<double>(count), static_cast<double>(each), path);
  std::vector<unsigned char> buffer(static_cast<std::size_t>(count) * each);
  DNE_H5_CHECK(H5Dread(dset.id, memory.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()), "dataset " + path + " cannot be read");
  if (H5Tis_variable_str(memory.id) > 0) H5Dvlen_reclaim(memory.id, space.id, H5P_DEFAULT, buffer.data());
}

}  // namespace

void verify_file(const std::string& path) {
  const Hdf5Lock lock;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  if (H5Fis_hdf5(path.c_str()) <= 0) throw StoreError(path + ": not an HDF5 file (truncated or overwritten?)");
  H5Handle file(DNE_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "open " + path));
  std::vector<ObjectName> objects;
  try {
    objects = object_names(file.id, path);
  } catch (const StoreError& e) {
    throw StoreError(path + " is corrupt: its structure cannot be walked: " + e.what());
  }
  for (const auto& object : objects) {
    if (object.type != H5O_TYPE_DATASET) continue;
    try {
      verify_dataset(file.id, object.path);
    } catch (const StoreError& e) {
      throw StoreError(path + " is corrupt: " + e.what());
    } catch (const std::bad_alloc&) {
      throw StoreError(path + " is corrupt: dataset " + object.path + " cannot be held in memory");
    }
  }
}

std::string read_root_string_attribute(const std::string& path, const std::string& name) {
  const Hdf5Lock lock;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  if (H5Fis_hdf5(path.c_str()) <= 0) throw StoreError(path + ": not an HDF5 file");
  H5Handle file(DNE_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "open " + path));
  return root_string(file.id, name);
}

namespace {
/// All numeric attributes of group `path` (empty if the group is absent; attributes of other
/// classes are skipped).
std::map<std::string, double> numeric_attributes(hid_t file, const std::string& path) {
  std::map<std::string, double> out;
  if (!link_exists(file, path, "read " + path)) return out;
  H5Handle group(DNE_H5_CHECK(H5Gopen2(file, path.c_str(), H5P_DEFAULT), "open " + path));
  for (const auto& name : attribute_names(group.id, path)) {
    const std::string context = "attribute " + path + "@" + name;
    H5Handle attr(DNE_H5_CHECK(H5Aopen(group.id, name.c_str(), H5P_DEFAULT), "open " + context));
    H5Handle type(DNE_H5_CHECK(H5Aget_type(attr.id), context));
    const H5T_class_t cls = DNE_H5_CHECK(H5Tget_class(type.id), context);
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) continue;
    H5Handle space(DNE_H5_CHECK(H5Aget_space(attr.id), context));
    if (DNE_H5_CHECK(H5Sget_simple_extent_npoints(space.id), context) != 1) continue;  // one double is read
    double v = 0.0;
    DNE_H5_CHECK(H5Aread(attr.id, H5T_NATIVE_DOUBLE, &v), "read " + context);
    out[name] = v;
  }
  return out;
}
}  // namespace

std::string now_iso8601() {
  const std::time_t t = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buf;
}

void skip_hdf5_cleanup_at_exit() { H5dont_atexit(); }

std::string hdf5_version() {
  const Hdf5Lock lock;
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release);
}

ExperimentRecord read_experiment_record(const std::string& path) {
  const Hdf5Lock lock;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  if (H5Fis_hdf5(path.c_str()) <= 0) throw StoreError(path + ": not an HDF5 file");
  H5Handle file(DNE_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "open " + path));
  ExperimentRecord r;
  r.id = root_string(file.id, "id");
  r.status = root_string(file.id, "status");
  r.metrics = numeric_attributes(file.id, "/metrics");
  for (const auto& [name, value] : numeric_attributes(file.id, "/control/metrics")) r.metrics["control_" + name] = value;
  const auto timings = numeric_attributes(file.id, "/timings");
  if (timings.count("total_s")) r.wall_s = timings.at("total_s");
  const auto provenance = numeric_attributes(file.id, "/provenance");
  if (provenance.count("queries")) r.queries = static_cast<std::int64_t>(provenance.at("queries"));
  if (provenance.count("group_size")) r.ranks = static_cast<int>(provenance.at("group_size"));
  return r;
}

}  // namespace dne::store

// ---------------------------------------------------------------------------------------------
// H5Reader
namespace dne::store {
namespace {
/// Open `object`'s attribute `name` (StoreError naming file, object and attribute if absent).
hid_t open_attribute(hid_t file, const std::string& path, const std::string& object, const std::string& name) {
  if (DNE_H5_CHECK(H5Aexists_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT), path + ": " + object + "@" + name) <= 0)
    throw StoreError(path + ": attribute " + object + "@" + name + " is missing");
  return DNE_H5_CHECK(H5Aopen_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                      path + ": " + object + "@" + name);
}

H5T_class_t attribute_class(hid_t attr, const std::string& context) {
  H5Handle type(DNE_H5_CHECK(H5Aget_type(attr), context));
  return DNE_H5_CHECK(H5Tget_class(type.id), context);
}

/// StoreError unless the attribute holds exactly one value (reads below write one value).
void require_scalar(hid_t attr, const std::string& path, const std::string& object, const std::string& name) {
  H5Handle space(DNE_H5_CHECK(H5Aget_space(attr), path + ": " + object + "@" + name));
  if (DNE_H5_CHECK(H5Sget_simple_extent_npoints(space.id), path + ": " + object + "@" + name) != 1)
    throw StoreError(path + ": attribute " + object + "@" + name + " is not a single value");
}

template <class T>
std::vector<T> read_numeric(hid_t file, const std::string& path, const std::string& dataset, hid_t mem_type,
                            std::vector<std::uint64_t>& dims) {
  if (!link_exists(file, dataset, path)) throw StoreError(path + ": dataset " + dataset + " is missing");
  H5Handle dset(DNE_H5_CHECK(H5Dopen2(file, dataset.c_str(), H5P_DEFAULT), path + ": open " + dataset));
  H5Handle type(DNE_H5_CHECK(H5Dget_type(dset.id), path + ": " + dataset));
  const H5T_class_t cls = DNE_H5_CHECK(H5Tget_class(type.id), path + ": " + dataset);
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) throw StoreError(path + ": dataset " + dataset + " is not numeric");
  H5Handle space(DNE_H5_CHECK(H5Dget_space(dset.id), path + ": " + dataset));
  const int rank = DNE_H5_CHECK(H5Sget_simple_extent_ndims(space.id), path + ": " + dataset);
  std::vector<hsize_t> h(static_cast<std::size_t>(rank));
  if (rank > 0) DNE_H5_CHECK(H5Sget_simple_extent_dims(space.id, h.data(), nullptr), path + ": " + dataset);
  dims.assign(h.begin(), h.end());
  std::uint64_t count = 1;
  for (auto d : dims) count *= d;
  require_plausible_size(dset.id, static_cast<double>(count), sizeof(T), path + ": " + dataset);
  std::vector<T> out(count);
  if (count > 0)
    DNE_H5_CHECK(H5Dread(dset.id, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), path + ": read " + dataset);
  return out;
}

}  // namespace

H5Reader::H5Reader(std::string path) : path_(std::move(path)) {
  const Hdf5Lock lock;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  if (!std::filesystem::is_regular_file(path_)) throw StoreError(path_ + ": no such file");
  if (H5Fis_hdf5(path_.c_str()) <= 0) throw StoreError(path_ + ": not an HDF5 file");
  file_ = DNE_H5_CHECK(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), path_ + ": cannot open (truncated or damaged?)");
}

H5Reader::~H5Reader() {
  const Hdf5Lock lock;
  if (file_ >= 0) H5Fclose(static_cast<hid_t>(file_));
}

bool H5Reader::exists(const std::string& object) const {
  const Hdf5Lock lock;
  return link_exists(file_, object, path_);
}

bool H5Reader::has_attribute(const std::string& object, const std::string& name) const {
  const Hdf5Lock lock;
  return exists(object) &&
         DNE_H5_CHECK(H5Aexists_by_name(file_, object.c_str(), name.c_str(), H5P_DEFAULT), path_ + ": " + object + "@" + name) > 0;
}

std::string H5Reader::string_attribute(const std::string& object, const std::string& name) const {
  const Hdf5Lock lock;
  H5Handle attr(open_attribute(file_, path_, object, name));
  require_scalar(attr.id, path_, object, name);
  H5Handle type(DNE_H5_CHECK(H5Aget_type(attr.id), path_ + ": " + object + "@" + name));
  const std::string context = path_ + ": " + object + "@" + name;
  if (DNE_H5_CHECK(H5Tget_class(type.id), context) != H5T_STRING)
    throw StoreError(path_ + ": attribute " + object + "@" + name + " is not a string");
  if (DNE_H5_CHECK(H5Tis_variable_str(type.id), context) > 0) {
    char* value = nullptr;
    H5Handle mem(DNE_H5_CHECK(H5Tcopy(H5T_C_S1), context));
    DNE_H5_CHECK(H5Tset_size(mem.id, H5T_VARIABLE), context);
    DNE_H5_CHECK(H5Tset_cset(mem.id, DNE_H5_CHECK(H5Tget_cset(type.id), context)), context);
    DNE_H5_CHECK(H5Aread(attr.id, mem.id, &value), path_ + ": " + object + "@" + name);
    std::string s = value != nullptr ? value : "";
    if (value != nullptr) H5free_memory(value);
    return s;
  }
  const std::size_t size = type_size(type.id, context);
  std::string s(size, '\0');
  DNE_H5_CHECK(H5Aread(attr.id, type.id, s.data()), path_ + ": " + object + "@" + name);
  return s.substr(0, s.find('\0'));
}

std::int64_t H5Reader::int_attribute(const std::string& object, const std::string& name) const {
  const Hdf5Lock lock;
  H5Handle attr(open_attribute(file_, path_, object, name));
  require_scalar(attr.id, path_, object, name);
  if (attribute_class(attr.id, path_ + ": " + object + "@" + name) != H5T_INTEGER)
    throw StoreError(path_ + ": attribute " + object + "@" + name + " is not an integer");
  std::int64_t v = 0;
  DNE_H5_CHECK(H5Aread(attr.id, H5T_NATIVE_INT64, &v), path_ + ": " + object + "@" + name);
  return v;
}

double H5Reader::double_attribute(const std::string& object, const std::string& name) const {
  const Hdf5Lock lock;
  H5Handle attr(open_attribute(file_, path_, object, name));
  require_scalar(attr.id, path_, object, name);
  const auto cls = attribute_class(attr.id, path_ + ": " + object + "@" + name);
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    throw StoreError(path_ + ": attribute " + object + "@" + name + " is not a number");
  double v = 0;
  DNE_H5_CHECK(H5Aread(attr.id, H5T_NATIVE_DOUBLE, &v), path_ + ": " + object + "@" + name);
  return v;
}

std::vector<std::string> H5Reader::strings(const std::string& dataset) const {
  const Hdf5Lock lock;
  if (!exists(dataset)) throw StoreError(path_ + ": dataset " + dataset + " is missing");
  H5Handle dset(DNE_H5_CHECK(H5Dopen2(file_, dataset.c_str(), H5P_DEFAULT), path_ + ": open " + dataset));
  H5Handle type(DNE_H5_CHECK(H5Dget_type(dset.id), path_ + ": " + dataset));
  if (DNE_H5_CHECK(H5Tget_class(type.id), path_ + ": " + dataset) != H5T_STRING ||
      DNE_H5_CHECK(H5Tis_variable_str(type.id), path_ + ": " + dataset) <= 0)
    throw StoreError(path_ + ": dataset " + dataset + " is not a list of variable-length strings");
  H5Handle space(DNE_H5_CHECK(H5Dget_space(dset.id), path_ + ": " + dataset));
  const auto n = static_cast<std::size_t>(DNE_H5_CHECK(H5Sget_simple_extent_npoints(space.id), path_ + ": " + dataset));
  H5Handle mem(DNE_H5_CHECK(H5Tcopy(H5T_C_S1), dataset));
  DNE_H5_CHECK(H5Tset_size(mem.id, H5T_VARIABLE), dataset);
  DNE_H5_CHECK(H5Tset_cset(mem.id, DNE_H5_CHECK(H5Tget_cset(type.id), dataset)), dataset);
  require_memory_for_read(static_cast<double>(n) * sizeof(char*), path_ + ": " + dataset);
  std::vector<char*> raw(n, nullptr);
  if (n > 0) DNE_H5_CHECK(H5Dread(dset.id, mem.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), path_ + ": read " + dataset);
  std::vector<std::string> out;
  out.reserve(n);
  for (char* p : raw) out.emplace_back(p != nullptr ? p : "");
  if (n > 0) H5Dvlen_reclaim(mem.id, space.id, H5P_DEFAULT, raw.data());
  return out;
}

std::vector<float> H5Reader::floats(const std::string& dataset, std::vector<std::uint64_t>& dims) const {
  const Hdf5Lock lock;
  if (!exists(dataset)) throw StoreError(path_ + ": dataset " + dataset + " is missing");
  return read_numeric<float>(file_, path_, dataset, H5T_NATIVE_FLOAT, dims);
}

bool H5Reader::has_stored_data(const std::string& dataset) const {
  const Hdf5Lock lock;
  if (!exists(dataset)) throw StoreError(path_ + ": dataset " + dataset + " is missing");
  H5Handle d(DNE_H5_CHECK(H5Dopen2(file_, dataset.c_str(), H5P_DEFAULT), path_ + ": " + dataset));
  H5D_space_status_t status = H5D_SPACE_STATUS_ERROR;
  DNE_H5_CHECK(H5Dget_space_status(d.id, &status), path_ + ": " + dataset);
  return status != H5D_SPACE_STATUS_NOT_ALLOCATED && H5Dget_storage_size(d.id) > 0;
}

H5Reader::RawExtent H5Reader::raw_extent(const std::string& dataset) const {
  const Hdf5Lock lock;
  if (!exists(dataset)) throw StoreError(path_ + ": dataset " + dataset + " is missing");
  const std::string where = path_ + ": " + dataset;
  H5Handle d(DNE_H5_CHECK(H5Dopen2(file_, dataset.c_str(), H5P_DEFAULT), where));
  H5Handle plist(DNE_H5_CHECK(H5Dget_create_plist(d.id), where));
  if (H5Pget_layout(plist.id) != H5D_CONTIGUOUS || H5Pget_nfilters(plist.id) != 0)
    throw StoreError(where + " is not stored contiguously without filters");
  H5Handle type(DNE_H5_CHECK(H5Dget_type(d.id), where));
  if (H5Tget_class(type.id) != H5T_INTEGER || H5Tget_sign(type.id) != H5T_SGN_NONE || H5Tget_order(type.id) != H5T_ORDER_LE)
    throw StoreError(where + " is not little-endian unsigned integers");
  RawExtent e;
  e.element_size = H5Tget_size(type.id);
  H5Handle space(DNE_H5_CHECK(H5Dget_space(d.id), where));
  const int rank = DNE_H5_CHECK(H5Sget_simple_extent_ndims(space.id), where);
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  DNE_H5_CHECK(H5Sget_simple_extent_dims(space.id, dims.data(), nullptr), where);
  std::uint64_t count = 1;
  for (const auto v : dims) {
    e.dims.push_back(v);
    count *= v;
  }
  e.bytes = count * e.element_size;
  if (count == 0) return e;
  const haddr_t offset = H5Dget_offset(d.id);
  if (offset == HADDR_UNDEF || H5Dget_storage_size(d.id) < e.bytes) throw StoreError(where + " has no stored data");
  e.offset = static_cast<std::uint64_t>(offset);
  return e;
}

std::vector<double> H5Reader::doubles(const std::string& dataset, std::vector<std::uint64_t>& dims) const {
  const Hdf5Lock lock;
  if (!exists(dataset)) throw StoreError(path_ + ": dataset " + dataset + " is missing");
  return read_numeric<double>(file_, path_, dataset, H5T_NATIVE_DOUBLE, dims);
}

std::vector<std::string> H5Reader::children(const std::string& group) const {
  const Hdf5Lock lock;
  if (!exists(group)) throw StoreError(path_ + ": group " + group + " is missing");
  H5Handle g(DNE_H5_CHECK(H5Gopen2(file_, group.c_str(), H5P_DEFAULT), path_ + ": open " + group));
  std::vector<std::string> names;
  DNE_H5_CHECK(H5Literate(g.id, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_name<H5L_info_t>, &names),
               path_ + ": list " + group);
  return names;
}

}  // namespace dne::store
