// Listing an open HDF5 file's objects and an object's attributes, and an attribute's value as
// text (internal to the store module: the inspector and the readers share them).
#pragma once

#include <hdf5.h>

#include <string>
#include <vector>

namespace dne::store::detail {

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
std::vector<std::string> attribute_names(hid_t object, const std::string& context);

struct ObjectName {
  std::string path;
  H5O_type_t type;
};

/// Every object of an open file ("/" first), in name order.
std::vector<ObjectName> object_names(hid_t file, const std::string& context);

/// An attribute's value as inspect prints it (strings quoted, multi-line strings indented).
std::string attribute_text(hid_t attr, const std::string& context);

/// A root attribute as text ("" if absent; strings without their quotes).
std::string root_string(hid_t file, const std::string& name);

}  // namespace dne::store::detail
