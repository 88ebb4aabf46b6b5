// Sweep index writer (see index_file.hpp).
#include "dne/store/index_file.hpp"

#include <cmath>
#include <set>

#include "dne/core/errors.hpp"
#include "dne/store/result_file.hpp"

namespace dne::store {
namespace {

template <class T, class Get>
std::vector<T> column(const std::vector<IndexRow>& rows, Get get) {
  std::vector<T> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back(get(r));
  return out;
}

}  // namespace

std::string experiment_file(const std::string& id) { return "experiments/" + id + ".h5"; }

void write_index(const std::string& path, const IndexHeader& header, const std::vector<IndexRow>& rows) {
  const std::uint64_t n = rows.size();
  std::map<std::string, std::int64_t> counts{{"pending", 0}, {"running", 0}, {"complete", 0}, {"failed", 0}};
  for (const auto& r : rows) {
    if (!counts.count(r.status)) throw StoreError("index: row " + r.id + " has unknown status '" + r.status + "'");
    ++counts[r.status];
  }

  H5Writer w(path);
  w.attribute("/", "schema_version", static_cast<std::int64_t>(kIndexSchemaVersion));
  w.attribute("/", "config_origin", header.config_origin);
  w.attribute("/", "updated", now_iso8601());
  w.attribute("/", "total", static_cast<std::int64_t>(n));
  for (const auto& [status, count] : counts) w.attribute("/", status, count);
  w.attribute("/", "finished", static_cast<std::int64_t>(header.finished ? 1 : 0));
  w.attribute("/", "stopped_by", header.stopped_by);
  w.attribute("/", "elapsed_s", header.elapsed_s);
  w.attribute("/", "world_size", header.world_size);
  w.attribute("/", "ranks_per_experiment", header.ranks_per_experiment);
  w.attribute("/", "groups", header.groups);
  w.dataset("/axes", header.axes);
  for (const auto& [key, methods] : header.key_methods) w.dataset("/key_methods/" + key, methods);
  if (!header.method_names.empty()) {
    w.dataset("/methods/name", header.method_names);
    w.dataset("/methods/kind", header.method_kinds);
    w.dataset("/methods/trace_x", header.method_trace_x);
  }

  w.dataset("/experiments/id", column<std::string>(rows, [](const IndexRow& r) { return r.id; }));
  w.dataset("/experiments/status", column<std::string>(rows, [](const IndexRow& r) { return r.status; }));
  w.dataset("/experiments/error", column<std::string>(rows, [](const IndexRow& r) { return r.error; }));
  w.dataset("/experiments/file", column<std::string>(rows, [](const IndexRow& r) { return r.file; }));
  w.dataset("/experiments/method", column<std::string>(rows, [](const IndexRow& r) { return r.method; }));
  w.dataset("/experiments/editor_status",
            column<std::string>(rows, [](const IndexRow& r) { return r.editor_status; }));
  w.dataset("/experiments/seed", column<std::int64_t>(rows, [](const IndexRow& r) { return r.seed; }), {n});
  w.dataset("/experiments/wall_s", column<double>(rows, [](const IndexRow& r) { return r.wall_s; }), {n});
  w.dataset("/experiments/queries", column<std::int64_t>(rows, [](const IndexRow& r) { return r.queries; }), {n});
  w.dataset("/experiments/ranks", column<std::int32_t>(rows, [](const IndexRow& r) { return r.ranks; }), {n});
  w.dataset("/experiments/resumed", column<std::int32_t>(rows, [](const IndexRow& r) { return r.resumed; }), {n});

  if (!rows.empty()) {
    for (const auto& [key, first] : rows.front().axes) {
      bool text = false;
      for (const auto& r : rows) {
        const auto it = r.axes.find(key);
        if (it == r.axes.end()) throw StoreError("index: row " + r.id + " lacks axis " + key);
        text = text || std::holds_alternative<std::string>(it->second);
      }
      const std::string where = "/experiments/axes/" + key;
      if (text) {
        w.dataset(where, column<std::string>(rows, [&](const IndexRow& r) {
                    const auto& v = r.axes.at(key);
                    return std::holds_alternative<std::string>(v) ? std::get<std::string>(v)
                                                                  : std::to_string(std::get<double>(v));
                  }));
      } else {
        w.dataset(where, column<double>(rows, [&](const IndexRow& r) { return std::get<double>(r.axes.at(key)); }),
                  {n});
      }
    }
  }
  std::set<std::string> metric_names;
  for (const auto& r : rows)
    for (const auto& [name, value] : r.metrics) metric_names.insert(name);
  for (const auto& name : metric_names)
    w.dataset("/experiments/metrics/" + name, column<double>(rows, [&](const IndexRow& r) {
                const auto it = r.metrics.find(name);
                return it == r.metrics.end() ? std::nan("") : it->second;
              }),
              {n});
  for (const auto& r : rows)
    if (r.status == "complete" && !r.file.empty()) w.external_link("/links/" + r.id, r.file, "/");
  w.commit();
}

}  // namespace dne::store
