// Reading HDF5 files: verify_file, the experiment record, root attributes and the generic
// reader H5Reader (see result_file.hpp).
#include "dne/store/result_file.hpp"

#include <hdf5.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <new>

#include "dne/core/errors.hpp"
#include "dne/store/h5_checked.hpp"
#include "dne/store/h5_objects.hpp"

namespace dne::store {

using detail::attribute_names;
using detail::collect_name;
using detail::H5Handle;
using detail::Hdf5Lock;
using detail::link_exists;
using detail::object_names;
using detail::ObjectName;
using detail::require_memory_for_read;
using detail::require_plausible_size;
using detail::root_string;
using detail::type_size;

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

// ---------------------------------------------------------------------------------------------
// H5Reader
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
