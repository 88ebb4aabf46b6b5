// The CheXpert reader of the importers (see importer_parts.hpp, importers.hpp and docs/datasets.md).
//
// CheXpert v1.0 / v1.0-small: train.csv, valid.csv; Path relative to the folder above --root.
#include "importer_parts.hpp"

#include <algorithm>
#include <array>
#include <filesystem>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/data/csv.hpp"

namespace dne::data::import_detail {
namespace {

const std::vector<std::string> kCheXpertMetadataColumns = {"Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"};

std::string chexpert_patient(const std::string& path, const std::string& where) {
  for (const auto& part : fs::path(path)) {
    const std::string name = part.string();
    if (name.rfind("patient", 0) == 0 && name.size() > 7) return name;
  }
  throw DataError(where + ": Path '" + path + "' has no patientNNNNN folder");
}

}  // namespace

SourceRows read_chexpert(const ImportOptions& options, const fs::path& root) {
  SourceRows source;
  source.carve_validation_from_train = true;
  const std::array<std::pair<const char*, const char*>, 2> tables = {{{"train.csv", "train"}, {"valid.csv", "test"}}};
  for (const auto& [name, official_split] : tables)
    if (!is_file(root / name))
      throw DataError((root / name).string() +
                      ": not found (--root must be the CheXpert folder holding train.csv and valid.csv)");
  const fs::path parent = root.parent_path();
  for (const auto& [name, official_split] : tables) {
    const CsvTable table = read_csv((root / name).string());
    source.tables_read.push_back(table.path);
    const int path_col = table.require("Path"), sex_col = table.require("Sex"), age_col = table.require("Age");
    const int frontal_col = table.require("Frontal/Lateral"), view_col = table.require("AP/PA");
    const auto findings = columns_except(table, kCheXpertMetadataColumns);
    if (std::find(findings.begin(), findings.end(), options.task) == findings.end())
      unknown_task(options.task, "CheXpert " + std::string(name), findings);
    const int task_col = table.column(options.task);
    int sa_col = -1;
    if (options.sa.kind == SensitiveAttribute::Kind::kColumnEquals) {
      sa_col = table.column(options.sa.column);
      if (sa_col < 0) unknown_sa_column(options.sa, {&table});
    }
    for (const auto& row : table.rows) {
      const auto& f = row.fields;
      Candidate c;
      c.where = table.where(row);
      const std::string& path = f[static_cast<std::size_t>(path_col)];
      if (path.empty()) throw DataError(c.where + ": empty Path");
      const fs::path relative(path);
      if (relative.is_absolute() || std::any_of(relative.begin(), relative.end(), [](const fs::path& part) { return part == ".."; }))
        throw DataError(c.where + ": Path '" + path + "' is absolute or climbs with '..': images must lie under --root");
      c.patient = chexpert_patient(path, c.where);
      c.sex = parse_sex(f[static_cast<std::size_t>(sex_col)], "Sex", c.where);
      c.age = parse_age(f[static_cast<std::size_t>(age_col)], "Age", c.where, c.implausible_age);
      const std::string frontal = f[static_cast<std::size_t>(frontal_col)];
      if (frontal == "Frontal") {
        c.view = f[static_cast<std::size_t>(view_col)];
      } else if (frontal == "Lateral") {
        c.view = "LATERAL";
      } else {
        throw DataError(c.where + ": Frontal/Lateral is '" + frontal + "' (expected Frontal or Lateral)");
      }
      c.finding = parse_finding(f[static_cast<std::size_t>(task_col)], options.task, c.where);
      c.official_split = official_split;
      if (sa_col >= 0) c.sa_field = f[static_cast<std::size_t>(sa_col)];
      // Path starts with the dataset's folder name (CheXpert-v1.0-small/train/...): look beside
      // --root first, then inside it, then inside it without that first component.
      c.image_paths = {parent / relative, root / relative};
      if (std::distance(relative.begin(), relative.end()) > 1) {
        fs::path rest;
        for (auto it = std::next(relative.begin()); it != relative.end(); ++it) rest /= *it;
        c.image_paths.push_back(root / rest);
      }
      c.image_name = path;
      source.candidates.push_back(std::move(c));
    }
  }
  return source;
}

}  // namespace dne::data::import_detail
