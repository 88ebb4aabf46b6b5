// The plain-text inspector of HDF5 files (see result_file.hpp).
#include "dne/store/result_file.hpp"

#include <hdf5.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/store/h5_checked.hpp"
#include "dne/store/h5_objects.hpp"

namespace dne::store {

using detail::attribute_names;
using detail::attribute_text;
using detail::H5Handle;
using detail::Hdf5Lock;
using detail::object_names;
using detail::require_plausible_size;
using detail::type_size;

namespace {

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

}  // namespace dne::store
