// Object and attribute listings, and an attribute's value as text (see h5_objects.hpp).
#include "dne/store/h5_objects.hpp"

#include <sstream>

#include "dne/store/h5_checked.hpp"

namespace dne::store::detail {
namespace {

herr_t collect_object(hid_t, const char* name, const H5O_info_t* info, void* data) noexcept {
  try {
    static_cast<std::vector<ObjectName>*>(data)->push_back(
        {std::string(name) == "." ? "/" : "/" + std::string(name), info->type});
    return 0;
  } catch (...) {  // nothing may be thrown through HDF5's C frames
    return -1;
  }
}

}  // namespace

std::vector<std::string> attribute_names(hid_t object, const std::string& context) {
  std::vector<std::string> names;
  DNE_H5_CHECK(H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_name<H5A_info_t>, &names),
               "list the attributes of " + context);
  return names;
}

std::vector<ObjectName> object_names(hid_t file, const std::string& context) {
  std::vector<ObjectName> objects;
  DNE_H5_CHECK(H5Ovisit(file, H5_INDEX_NAME, H5_ITER_INC, collect_object, &objects), "walk " + context);
  return objects;
}

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

std::string root_string(hid_t file, const std::string& name) {
  if (DNE_H5_CHECK(H5Aexists(file, name.c_str()), "attribute /@" + name) <= 0) return "";
  H5Handle attr(DNE_H5_CHECK(H5Aopen(file, name.c_str(), H5P_DEFAULT), name));
  std::string text = attribute_text(attr.id, "attribute /@" + name);
  if (text.size() >= 2 && text.front() == '"') text = text.substr(1, text.size() - 2);
  return text;
}

}  // namespace dne::store::detail
