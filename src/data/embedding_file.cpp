// Reading and writing embedding files (see embedding_file.hpp).
#include "dne/data/embedding_file.hpp"

#include <cmath>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/store/result_file.hpp"

namespace dne::data {
namespace {

constexpr const char* kLayout =
    "expected train/x (N, D), train/label, train/sa [, train/age] and the same under test/ (docs/datasets.md)";

std::string join(const std::string& group, const std::string& name) {
  return group == "/" ? "/" + name : group + "/" + name;
}

/// A 1-D dataset of n values that are all 0 or 1.
std::vector<int> read_binary(const store::H5Reader& file, const std::string& name, std::size_t n) {
  std::vector<std::uint64_t> dims;
  const auto values = file.doubles(name, dims);
  if (dims.size() != 1 || dims[0] != n)
    throw DataError(file.path() + ": " + name + " must have shape (" + std::to_string(n) + ",) like the rows of x");
  std::vector<int> out(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i] != 0.0 && values[i] != 1.0)
      throw DataError(file.path() + ": " + name + "[" + std::to_string(i) + "] = " + std::to_string(values[i]) +
                      " (expected 0 or 1)");
    out[i] = static_cast<int>(values[i]);
  }
  return out;
}

ImageSet read_split(const store::H5Reader& file, const std::string& group, const std::string& split) {
  const std::string g = join(group, split);
  for (const char* part : {"x", "label", "sa"}) {
    if (!file.exists(g + "/" + part)) throw DataError(file.path() + ": " + g + "/" + part + " is missing; " + kLayout);
    if (!file.has_stored_data(g + "/" + part))
      throw DataError(file.path() + ": " + g + "/" + part + " was declared but its values were never written: reading it "
                      "would give HDF5's fill values (an interrupted export?)");
  }
  ImageSet set;
  std::vector<std::uint64_t> dims;
  set.pixels = file.floats(g + "/x", dims);
  if (dims.size() != 2 || dims[0] == 0 || dims[1] == 0)
    throw DataError(file.path() + ": " + g + "/x must be a non-empty 2-D array (N, D); " + kLayout);
  const auto n = static_cast<std::size_t>(dims[0]);
  set.height = 1;
  set.width = static_cast<std::int64_t>(dims[1]);
  for (std::size_t p = 0; p < set.pixels.size(); ++p)
    if (!std::isfinite(set.pixels[p]))
      throw DataError(file.path() + ": " + g + "/x row " + std::to_string(p / dims[1]) + " has a non-finite value");
  set.label = read_binary(file, g + "/label", n);
  set.sa = read_binary(file, g + "/sa", n);
  if (file.exists(g + "/age")) {
    set.age = file.floats(g + "/age", dims);
    if (dims.size() != 1 || dims[0] != n)
      throw DataError(file.path() + ": " + g + "/age must have shape (" + std::to_string(n) + ",) like the rows of x");
    for (std::size_t i = 0; i < n; ++i)
      if (!std::isfinite(set.age[i])) throw DataError(file.path() + ": " + g + "/age[" + std::to_string(i) + "] is not finite");
  }
  for (std::size_t i = 0; i < n; ++i) set.source.push_back("embeddings:" + split + ":" + std::to_string(i));
  return set;
}

}  // namespace

std::string find_embedding_group(const std::string& path, const std::string& group) {
  try {
    const store::H5Reader file(path);
    if (!group.empty()) {
      if (!file.exists(group)) throw DataError(path + ": no group " + group + " (data.embeddings_group)");
      return group;
    }
    if (file.exists("/train/x")) return "/";
    if (file.exists("/embeddings/train/x")) return "/embeddings";
    throw DataError(path + ": neither /train/x nor /embeddings/train/x exists; " + kLayout +
                    (file.exists("/embeddings/train") ? " (a result file written before embeddings carried their labels: "
                                                        "run the experiment again)"
                                                      : ""));
  } catch (const StoreError& e) {
    throw DataError(e.what());
  }
}

Dataset read_embeddings(const std::string& path, const std::string& group) {
  const std::string g = find_embedding_group(path, group);
  try {
    const store::H5Reader file(path);
    Dataset ds;
    ds.train = read_split(file, g, "train");
    ds.test = read_split(file, g, "test");
    if (file.exists(join(g, "val"))) ds.val = read_split(file, g, "val");
    for (const ImageSet* s : {&ds.test, &ds.val})
      if (s->size() > 0 && s->width != ds.train.width)
        throw DataError(path + ": the splits have different embedding widths (train D = " + std::to_string(ds.train.width) +
                        ", " + (s == &ds.test ? "test" : "val") + " D = " + std::to_string(s->width) + ")");
    if (ds.train.age.empty() != ds.test.age.empty())
      throw DataError(path + ": " + join(g, ds.train.age.empty() ? "test" : "train") +
                      "/age exists but the other split has none");
    return ds;
  } catch (const StoreError& e) {
    throw DataError(e.what());
  }
}

void write_embedding_split(store::H5Writer& writer, const std::string& group, const ImageSet& rows) {
  const auto n = static_cast<std::uint64_t>(rows.size());
  writer.dataset(group + "/x", rows.pixels, {n, static_cast<std::uint64_t>(rows.width)});
  writer.dataset(group + "/label", std::vector<std::int32_t>(rows.label.begin(), rows.label.end()), {n});
  writer.dataset(group + "/sa", std::vector<std::int32_t>(rows.sa.begin(), rows.sa.end()), {n});
  if (!rows.age.empty()) writer.dataset(group + "/age", rows.age, {n});
}

}  // namespace dne::data
