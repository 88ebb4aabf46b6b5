// The atomic HDF5 writer (see result_file.hpp).
#include "dne/store/result_file.hpp"

#include "dne/core/text.hpp"

#include <hdf5.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>

#include "dne/core/errors.hpp"
#include "dne/core/host.hpp"
#include "dne/store/h5_checked.hpp"

namespace dne::store {

using detail::H5Handle;
using detail::Hdf5Lock;
using detail::link_exists;

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

std::string now_iso8601() {
  const std::time_t t = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buf;
}

}  // namespace dne::store
