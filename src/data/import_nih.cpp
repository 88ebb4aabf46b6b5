// The NIH ChestX-ray14 reader of the importers (see importer_parts.hpp, importers.hpp and
// docs/datasets.md).
//
// NIH ChestX-ray14: Data_Entry_2017[_v2020].csv, PNGs anywhere below --root, split lists.
#include "importer_parts.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/data/csv.hpp"

namespace dne::data::import_detail {
namespace {

/// One name per non-blank line (NIH's split lists).
std::set<std::string> read_name_list(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw DataError(file.string() + ": cannot open");
  std::set<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    line = trim(line);
    if (!line.empty()) names.insert(line);
  }
  return names;
}

const std::vector<std::string> kNihFindings = {
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass",   "Nodule",   "Pneumonia",          "Pneumothorax",
    "Consolidation", "Edema",     "Emphysema", "Fibrosis",    "Hernia", "No Finding", "Pleural_Thickening"};
const std::map<std::string, std::string> kNihAliases = {{"Pleural Effusion", "Effusion"},
                                                        {"Pleural Thickening", "Pleural_Thickening"}};

std::vector<std::string> split_labels(const std::string& labels) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const auto bar = labels.find('|', start);
    const std::string label = trim(labels.substr(start, bar == std::string::npos ? std::string::npos : bar - start));
    if (!label.empty()) out.push_back(label);
    if (bar == std::string::npos) return out;
    start = bar + 1;
  }
}

/// file name -> every path of a .png of that name below `root` (one walk; sorted).
std::unordered_map<std::string, std::vector<fs::path>> index_png_files(const fs::path& root) {
  std::unordered_map<std::string, std::vector<fs::path>> by_name;
  try {
    for (const auto& entry : fs::recursive_directory_iterator(
             root, fs::directory_options::skip_permission_denied | fs::directory_options::follow_directory_symlink)) {
      const auto& path = entry.path();
      if (path.extension() != ".png" || !entry.is_regular_file()) continue;
      by_name[path.filename().string()].push_back(path);
    }
  } catch (const fs::filesystem_error& e) {
    throw DataError(root.string() + ": cannot list the images: " + e.what());
  }
  for (auto& [name, paths] : by_name) std::sort(paths.begin(), paths.end());
  return by_name;
}

}  // namespace

SourceRows read_nih(const ImportOptions& options, const fs::path& root) {
  SourceRows source;
  source.carve_validation_from_train = true;
  fs::path entry_file;
  for (const char* name : {"Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv"})
    if (entry_file.empty() && is_file(root / name)) entry_file = root / name;
  if (entry_file.empty())
    throw DataError((root / "Data_Entry_2017.csv").string() +
                    ": not found (nor Data_Entry_2017_v2020.csv; --root must be the ChestX-ray14 folder)");
  const CsvTable table = read_csv(entry_file.string());
  source.tables_read.push_back(table.path);
  const int image_col = table.require("Image Index"), labels_col = table.require("Finding Labels");
  const int patient_col = table.require("Patient ID"), age_col = table.require("Patient Age");
  const int sex_col = table.require("Patient Gender"), view_col = table.require("View Position");

  std::vector<std::string> findings = kNihFindings;
  for (const auto& row : table.rows)
    for (const auto& label : split_labels(row.fields[static_cast<std::size_t>(labels_col)]))
      if (std::find(findings.begin(), findings.end(), label) == findings.end()) findings.push_back(label);
  const auto alias = kNihAliases.find(options.task);
  const std::string finding = alias == kNihAliases.end() ? options.task : alias->second;
  if (std::find(findings.begin(), findings.end(), finding) == findings.end()) {
    std::sort(findings.begin(), findings.end());
    for (const auto& [from, to] : kNihAliases) findings.push_back(from + " (= " + to + ")");
    unknown_task(options.task, "NIH ChestX-ray14 Finding Labels", findings);
  }
  int sa_col = -1;
  if (options.sa.kind == SensitiveAttribute::Kind::kColumnEquals) {
    sa_col = table.column(options.sa.column);
    if (sa_col < 0) unknown_sa_column(options.sa, {&table});
  }

  std::set<std::string> train_list, test_list;
  if (options.split == SplitMethod::kOfficial) {
    for (auto [name, list] : {std::pair{"train_val_list.txt", &train_list}, std::pair{"test_list.txt", &test_list}}) {
      if (!is_file(root / name))
        throw DataError((root / name).string() + ": not found (needed by --split official)");
      *list = read_name_list(root / name);
      source.tables_read.push_back((root / name).string());
    }
    std::vector<std::string> both;
    std::set_intersection(train_list.begin(), train_list.end(), test_list.begin(), test_list.end(), std::back_inserter(both));
    if (!both.empty())
      throw DataError((root / "test_list.txt").string() + ": " + std::to_string(both.size()) + " image(s) also in " +
                      (root / "train_val_list.txt").string() + ", the first " + both.front() +
                      ": an image in both official lists would be trained and tested on");
  }

  const auto images = index_png_files(root);
  for (const auto& row : table.rows) {
    const auto& f = row.fields;
    Candidate c;
    c.where = table.where(row);
    c.image_name = f[static_cast<std::size_t>(image_col)];
    if (c.image_name.empty()) throw DataError(c.where + ": empty Image Index");
    c.patient = f[static_cast<std::size_t>(patient_col)];
    if (c.patient.empty()) throw DataError(c.where + ": empty Patient ID");
    c.sex = parse_sex(f[static_cast<std::size_t>(sex_col)], "Patient Gender", c.where);
    c.age = parse_age(f[static_cast<std::size_t>(age_col)], "Patient Age", c.where, c.implausible_age);
    c.view = f[static_cast<std::size_t>(view_col)];
    const auto labels = split_labels(f[static_cast<std::size_t>(labels_col)]);
    c.finding = std::find(labels.begin(), labels.end(), finding) != labels.end() ? Finding::kPositive : Finding::kNegative;
    if (options.split == SplitMethod::kOfficial)
      c.official_split = test_list.count(c.image_name) ? "test" : train_list.count(c.image_name) ? "train" : "";
    if (sa_col >= 0) c.sa_field = f[static_cast<std::size_t>(sa_col)];
    const auto image = images.find(c.image_name);
    if (image != images.end()) {
      if (image->second.size() > 1)
        throw DataError(c.where + ": " + std::to_string(image->second.size()) + " files named " + c.image_name + " under " +
                        root.string() + " (" + image->second[0].string() + ", " + image->second[1].string() +
                        "): which one is the image is ambiguous; remove the others");
      c.image_paths = image->second;
    }
    source.candidates.push_back(std::move(c));
  }
  return source;
}

}  // namespace dne::data::import_detail
