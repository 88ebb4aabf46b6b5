// Importers (see importers.hpp and docs/datasets.md): one reader per published layout turns the
// dataset's tables into candidate rows (patient, sex, age, view, finding value, official split,
// where the image may be); one shared pipeline then assigns splits, applies the view, label and
// sensitive-attribute rules in a fixed order, checks that each kept image exists, and counts
// what it dropped and why.
#include "dne/data/importers.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "dne/core/errors.hpp"
#include "dne/core/random.hpp"
#include "dne/data/csv.hpp"

namespace dne::data {
namespace fs = std::filesystem;
namespace {

/// Whether `p` is a regular file / a folder; a path that cannot be examined (permissions, I/O)
/// counts as absent, so the caller's message names it instead of an internal error.
bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}
bool is_folder(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

constexpr std::array<const char*, 3> kSplitNames = {"train", "val", "test"};

/// A finding's value in the dataset's table.
enum class Finding { kNegative, kPositive, kUncertain, kBlank };

/// Why a row was dropped, in the order the rules are applied (ImportSummary::dropped).
enum DropReason { kNotInOfficialSplit, kViewNotFrontal, kUncertainLabel, kBlankLabel, kUnknownSex, kUnknownAge,
                  kMissingImage, kDropReasonCount };
constexpr std::array<const char*, kDropReasonCount> kDropReasonNames = {
    "not in the official split", "view not PA/AP", "uncertain label", "blank label",
    "unknown sex",               "unknown age",    "missing image"};

/// One image row of a dataset, before the rules.
struct Candidate {
  std::string where;  // "<table>:<line>"
  std::string patient;
  int sex = -1;
  std::optional<std::int64_t> age;
  bool implausible_age = false;  // the table's age was above kMaxAgeYears: unknown
  std::string view;
  Finding finding = Finding::kBlank;
  std::string official_split;         // "train" / "val" / "test"; empty: in no official split
  std::string sa_field;               // the --sa column's value (column rule only)
  std::vector<fs::path> image_paths;  // where the image may be, in order; the first that exists is it
  std::string image_name;             // the image as the table names it (messages)
};

/// What a format's reader hands to the shared pipeline.
struct SourceRows {
  std::vector<Candidate> candidates;
  std::vector<std::string> tables_read;
  bool carve_validation_from_train = false;  // official split: val is carved from train by patient
};

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

std::string lower(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string trim(const std::string& text) {
  const auto begin = text.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t\r") - begin + 1);
}

bool all_digits(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// A number filling the whole of `text`, or nullopt.
std::optional<double> parse_number(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

Finding parse_finding(const std::string& text, const std::string& column, const std::string& where) {
  if (text.empty()) return Finding::kBlank;
  const auto value = parse_number(text);
  if (value && *value == 1.0) return Finding::kPositive;
  if (value && *value == 0.0) return Finding::kNegative;
  if (value && *value == -1.0) return Finding::kUncertain;
  throw DataError(where + ": " + column + " is '" + text + "' (expected 1.0, 0.0, -1.0 or blank)");
}

/// 1 female, 0 male, -1 unknown (Female/F, Male/M, Unknown/U/blank; any case).
int parse_sex(const std::string& text, const std::string& column, const std::string& where) {
  const std::string value = lower(text);
  if (value == "female" || value == "f") return 1;
  if (value == "male" || value == "m") return 0;
  if (value.empty() || value == "unknown" || value == "u") return -1;
  throw DataError(where + ": " + column + " is '" + text + "' (expected Female/F, Male/M, Unknown or blank)");
}

constexpr double kMaxAgeYears = 150.0;  // above: a data-entry error, not an age (NIH's table has a few, up to 414)

/// Whole years from "58", "58.0" or the old NIH form "058Y" (also "011M" months, "005D" days).
/// An age above kMaxAgeYears (or one too large for an integer, such as 1e300) is unknown, and
/// `implausible` is set so that the summary can count it.
std::optional<std::int64_t> parse_age(const std::string& text, const std::string& column, const std::string& where,
                                      bool& implausible) {
  implausible = false;
  if (text.empty()) return std::nullopt;
  std::string number = text;
  double years_per_unit = 1.0;
  const char unit = static_cast<char>(std::toupper(static_cast<unsigned char>(number.back())));
  if (unit == 'Y' || unit == 'M' || unit == 'D') {
    number.pop_back();
    years_per_unit = unit == 'Y' ? 1.0 : unit == 'M' ? 1.0 / 12.0 : 1.0 / 365.25;
  }
  const auto value = parse_number(number);
  if (!value || *value < 0.0) throw DataError(where + ": " + column + " is '" + text + "' (expected an age in years)");
  if (*value * years_per_unit > kMaxAgeYears) {
    implausible = true;
    return std::nullopt;
  }
  return static_cast<std::int64_t>(std::floor(*value * years_per_unit + 1e-9));
}

[[noreturn]] void unknown_task(const std::string& task, const std::string& source,
                               const std::vector<std::string>& available) {
  throw ConfigError("--task '" + task + "': not a finding of " + source + " (available: " + join(available, ", ") + ")");
}

/// The columns of `table` other than `exclude`, in table order.
std::vector<std::string> columns_except(const CsvTable& table, const std::vector<std::string>& exclude) {
  std::vector<std::string> out;
  for (const auto& name : table.header)
    if (!name.empty() && std::find(exclude.begin(), exclude.end(), name) == exclude.end()) out.push_back(name);
  return out;
}

[[noreturn]] void unknown_sa_column(const SensitiveAttribute& sa, const std::vector<const CsvTable*>& tables) {
  std::vector<std::string> described;
  for (const auto* table : tables)
    described.push_back(fs::path(table->path).filename().string() + " (columns: " + join(table->header, ", ") + ")");
  throw ConfigError("--sa column:" + sa.column + "=" + sa.value + ": no column '" + sa.column + "' in " +
                    join(described, " or "));
}

/// `stem`.csv.gz or `stem`.csv in `folder`; empty when neither exists.
fs::path find_table(const fs::path& folder, const std::string& stem) {
  for (const char* ext : {".csv.gz", ".csv"}) {
    const auto candidate = folder / (stem + ext);
    if (is_file(candidate)) return candidate;
  }
  return {};
}

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

// ------------------------------------------------------------------------------------------------
// CheXpert v1.0 / v1.0-small: train.csv, valid.csv; Path relative to the folder above --root.

const std::vector<std::string> kCheXpertMetadataColumns = {"Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"};

std::string chexpert_patient(const std::string& path, const std::string& where) {
  for (const auto& part : fs::path(path)) {
    const std::string name = part.string();
    if (name.rfind("patient", 0) == 0 && name.size() > 7) return name;
  }
  throw DataError(where + ": Path '" + path + "' has no patientNNNNN folder");
}

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

// ------------------------------------------------------------------------------------------------
// MIMIC-CXR-JPG 2.0.0: metadata, chexpert (study level) and split tables; sex and age from
// MIMIC-IV's patients table; images at files/pXX/pSUBJECT/sSTUDY/DICOM.jpg.

/// patients.csv[.gz] directly in `root`, else exactly one anywhere below it (not under files/).
fs::path find_patients_table(const fs::path& root) {
  const auto direct = find_table(root, "patients");
  if (!direct.empty()) return direct;
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it.depth() == 0 && it->path().filename() == "files") {
      it.disable_recursion_pending();  // the images: hundreds of thousands of files, no tables
      continue;
    }
    const auto name = it->path().filename().string();
    if ((name == "patients.csv.gz" || name == "patients.csv") && it->is_regular_file()) found.push_back(it->path().string());
  }
  std::sort(found.begin(), found.end());
  if (found.empty())
    throw DataError(root.string() + ": no patients.csv.gz or patients.csv (MIMIC-CXR-JPG has no sex or age: pass "
                                    "--patients FILE, MIMIC-IV's hosp/patients.csv.gz)");
  if (found.size() > 1)
    throw DataError(root.string() + ": several patients tables (" + join(found, ", ") + "): choose one with --patients");
  return found.front();
}

SourceRows read_mimic(const ImportOptions& options, const fs::path& root) {
  SourceRows source;
  auto require_table = [&](const std::string& stem) {
    const auto file = find_table(root, stem);
    if (file.empty())
      throw DataError((root / (stem + ".csv.gz")).string() +
                      ": not found (nor .csv; --root must be the MIMIC-CXR-JPG 2.0.0 folder)");
    return file;
  };
  const CsvTable metadata = read_csv(require_table("mimic-cxr-2.0.0-metadata").string());
  const CsvTable chexpert = read_csv(require_table("mimic-cxr-2.0.0-chexpert").string());
  fs::path patients_file;
  if (!options.patients_file.empty()) {
    patients_file = options.patients_file;
    if (!is_file(patients_file))
      throw ConfigError("--patients '" + options.patients_file + "': no such file");
  } else {
    patients_file = find_patients_table(root);
  }
  const CsvTable patients = read_csv(patients_file.string());
  source.tables_read = {metadata.path, chexpert.path, patients.path};

  // Findings per study.
  const auto findings = columns_except(chexpert, {"subject_id", "study_id"});
  if (std::find(findings.begin(), findings.end(), options.task) == findings.end())
    unknown_task(options.task, "MIMIC-CXR " + fs::path(chexpert.path).filename().string(), findings);
  const int task_col = chexpert.column(options.task);
  const int study_subject_col = chexpert.require("subject_id"), study_col = chexpert.require("study_id");
  std::unordered_map<std::string, Finding> finding_of_study;  // "subject/study" -> value
  for (const auto& row : chexpert.rows) {
    const auto& f = row.fields;
    finding_of_study[f[static_cast<std::size_t>(study_subject_col)] + "/" + f[static_cast<std::size_t>(study_col)]] =
        parse_finding(f[static_cast<std::size_t>(task_col)], options.task, chexpert.where(row));
  }

  // Sex and age per subject.
  const int patient_subject_col = patients.require("subject_id"), gender_col = patients.require("gender");
  const int anchor_age_col = patients.require("anchor_age");
  std::unordered_map<std::string, const CsvTable::Row*> patient_row;
  for (const auto& row : patients.rows) {
    const auto [it, fresh] = patient_row.emplace(row.fields[static_cast<std::size_t>(patient_subject_col)], &row);
    const auto& a = it->second->fields;
    const auto& b = row.fields;
    for (const int col : {gender_col, anchor_age_col})
      if (!fresh && a[static_cast<std::size_t>(col)] != b[static_cast<std::size_t>(col)])
        throw DataError(patients.where(row) + ": subject_id " + it->first + " has " + patients.header[static_cast<std::size_t>(col)] +
                        " '" + b[static_cast<std::size_t>(col)] + "', but " + patients.where(*it->second) + " says '" +
                        a[static_cast<std::size_t>(col)] + "': conflicting rows for one patient");
  }

  // The official split per image.
  std::unordered_map<std::string, std::string> split_of_dicom;
  if (options.split == SplitMethod::kOfficial) {
    const CsvTable splits = read_csv(require_table("mimic-cxr-2.0.0-split").string());
    source.tables_read.push_back(splits.path);
    const int dicom_col = splits.require("dicom_id"), split_col = splits.require("split");
    for (const auto& row : splits.rows) {
      const std::string& split = row.fields[static_cast<std::size_t>(split_col)];
      const std::string ours = split == "train" ? "train" : split == "validate" ? "val" : split == "test" ? "test" : "";
      if (ours.empty())
        throw DataError(splits.where(row) + ": split is '" + split + "' (expected train, validate or test)");
      split_of_dicom[row.fields[static_cast<std::size_t>(dicom_col)]] = ours;
    }
  }

  // The --sa column: the metadata's, else the patients table's.
  int sa_metadata_col = -1, sa_patients_col = -1;
  if (options.sa.kind == SensitiveAttribute::Kind::kColumnEquals) {
    sa_metadata_col = metadata.column(options.sa.column);
    if (sa_metadata_col < 0) sa_patients_col = patients.column(options.sa.column);
    if (sa_metadata_col < 0 && sa_patients_col < 0) unknown_sa_column(options.sa, {&metadata, &patients});
  }

  const int dicom_col = metadata.require("dicom_id"), subject_col = metadata.require("subject_id");
  const int metadata_study_col = metadata.require("study_id"), view_col = metadata.require("ViewPosition");
  for (const auto& row : metadata.rows) {
    const auto& f = row.fields;
    Candidate c;
    c.where = metadata.where(row);
    const std::string& dicom = f[static_cast<std::size_t>(dicom_col)];
    const std::string& subject = f[static_cast<std::size_t>(subject_col)];
    const std::string& study = f[static_cast<std::size_t>(metadata_study_col)];
    if (!all_digits(subject) || subject.size() < 2)
      throw DataError(c.where + ": subject_id is '" + subject + "' (expected a number such as 10000032)");
    if (dicom.empty() || study.empty()) throw DataError(c.where + ": empty dicom_id or study_id");
    c.patient = subject;
    c.view = f[static_cast<std::size_t>(view_col)];
    const auto study_finding = finding_of_study.find(subject + "/" + study);
    c.finding = study_finding == finding_of_study.end() ? Finding::kBlank : study_finding->second;
    const auto patient = patient_row.find(subject);
    if (patient != patient_row.end()) {
      const auto& pf = patient->second->fields;
      const std::string where = patients.where(*patient->second);
      c.sex = parse_sex(pf[static_cast<std::size_t>(gender_col)], "gender", where);
      c.age = parse_age(pf[static_cast<std::size_t>(anchor_age_col)], "anchor_age", where, c.implausible_age);
      if (sa_patients_col >= 0) c.sa_field = pf[static_cast<std::size_t>(sa_patients_col)];
    }
    if (sa_metadata_col >= 0) c.sa_field = f[static_cast<std::size_t>(sa_metadata_col)];
    if (options.split == SplitMethod::kOfficial) {
      const auto split = split_of_dicom.find(dicom);
      if (split != split_of_dicom.end()) c.official_split = split->second;
    }
    const fs::path relative = fs::path("files") / ("p" + subject.substr(0, 2)) / ("p" + subject) / ("s" + study) /
                              (dicom + ".jpg");
    c.image_paths = {root / relative};
    c.image_name = relative.generic_string();
    source.candidates.push_back(std::move(c));
  }
  return source;
}

// ------------------------------------------------------------------------------------------------
// NIH ChestX-ray14: Data_Entry_2017[_v2020].csv, PNGs anywhere below --root, split lists.

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

// ------------------------------------------------------------------------------------------------
// The shared pipeline.

/// Whether `path`, with every symlink and ".." resolved, lies under `canonical_root`.
bool inside(const fs::path& canonical_root, const fs::path& path) {
  const fs::path resolved = fs::weakly_canonical(path);
  auto r = canonical_root.begin();
  auto p = resolved.begin();
  for (; r != canonical_root.end() && !r->empty(); ++r, ++p)
    if (p == resolved.end() || *p != *r) return false;
  return true;
}

/// Buckets of `sorted_ids` (sorted, unique): permuted by CounterStream(seed, kSplit, step, 0); the
/// first round(first_fraction * P) go to bucket 0, the next round(second_fraction * P) to 1, the
/// rest to 2.
std::map<std::string, int> bucket_patients(const std::vector<std::string>& sorted_ids, std::uint64_t seed,
                                           std::uint32_t step, double first_fraction, double second_fraction) {
  const auto count = static_cast<std::int64_t>(sorted_ids.size());
  CounterStream stream(seed, StreamPurpose::kSplit, step, 0);
  const auto order = random_permutation(count, stream);
  const auto first = std::min<std::int64_t>(count, std::llround(first_fraction * static_cast<double>(count)));
  const auto second = std::min<std::int64_t>(count - first, std::llround(second_fraction * static_cast<double>(count)));
  std::map<std::string, int> bucket;
  for (std::int64_t k = 0; k < count; ++k)
    bucket[sorted_ids[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])]] = k < first ? 0 : k < first + second ? 1 : 2;
  return bucket;
}

std::vector<std::string> sorted_unique_patients(const std::vector<Candidate>& candidates, const std::string& only_split) {
  std::set<std::string> ids;
  for (const auto& c : candidates)
    if (only_split.empty() || c.official_split == only_split) ids.insert(c.patient);
  return {ids.begin(), ids.end()};
}

/// The split of every candidate (empty: none).
std::vector<std::string> assign_splits(const std::vector<Candidate>& candidates, const ImportOptions& options,
                                       bool carve_validation_from_train) {
  std::vector<std::string> split(candidates.size());
  const double val_fraction = options.val_fraction.value_or(0.1);
  if (options.split == SplitMethod::kPatient) {
    const auto bucket = bucket_patients(sorted_unique_patients(candidates, ""), options.seed, kImportPatientSplitStep,
                                        options.test_fraction.value_or(0.2), val_fraction);
    constexpr std::array<const char*, 3> kBucketSplit = {"test", "val", "train"};
    for (std::size_t i = 0; i < candidates.size(); ++i)
      split[i] = kBucketSplit[static_cast<std::size_t>(bucket.at(candidates[i].patient))];
    return split;
  }
  std::map<std::string, int> carved;
  if (carve_validation_from_train && val_fraction > 0.0)
    carved = bucket_patients(sorted_unique_patients(candidates, "train"), options.seed, kImportValidationCarveStep,
                             val_fraction, 0.0);
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    split[i] = candidates[i].official_split;
    if (split[i] == "train" && !carved.empty() && carved.at(candidates[i].patient) == 0) split[i] = "val";
  }
  return split;
}

void check_fraction(const std::optional<double>& fraction, const char* option) {
  if (fraction && !(*fraction >= 0.0 && *fraction < 1.0))
    throw ConfigError(std::string(option) + " " + std::to_string(*fraction) + ": expected a fraction in [0, 1)");
}

void validate(const ImportOptions& options) {
  if (options.root.empty()) throw ConfigError("--root DIR is required");
  if (!is_folder(options.root)) throw ConfigError("--root '" + options.root + "': no such directory");
  if (options.task.empty()) throw ConfigError("--task NAME is required");
  check_fraction(options.val_fraction, "--val-fraction");
  check_fraction(options.test_fraction, "--test-fraction");
  if (options.split == SplitMethod::kPatient &&
      !(options.val_fraction.value_or(0.1) + options.test_fraction.value_or(0.2) < 1.0))
    throw ConfigError("--val-fraction + --test-fraction must be below 1 (nothing would be left to train on)");
  if (options.split == SplitMethod::kOfficial && options.test_fraction)
    throw ConfigError("--test-fraction: not used with --split official (the test split is the dataset's own)");
  if (options.split == SplitMethod::kOfficial && options.format == DatasetFormat::kMimicCxr && options.val_fraction)
    throw ConfigError("--val-fraction: not used with --format mimic-cxr --split official (MIMIC's split has its own validate set)");
  if (!options.patients_file.empty() && options.format != DatasetFormat::kMimicCxr)
    throw ConfigError("--patients: only for --format mimic-cxr");
  if (options.sa.kind == SensitiveAttribute::Kind::kColumnEquals && options.sa.column.empty())
    throw ConfigError("--sa column:NAME=VALUE: empty NAME");
}

/// --root made absolute and normal, without a trailing separator (so that its parent is the
/// folder above it).
fs::path normal_root(const std::string& root) {
  fs::path path = fs::absolute(root).lexically_normal();
  if (path.filename().empty() && path.has_parent_path() && path != path.root_path()) path = path.parent_path();
  return path;
}

template <typename Enum, std::size_t N>
Enum parse_choice(const std::string& text, const char* option, const std::array<std::pair<const char*, Enum>, N>& choices) {
  std::vector<std::string> names;
  for (const auto& [name, value] : choices) {
    if (text == name) return value;
    names.push_back(name);
  }
  throw ConfigError(std::string(option) + " '" + text + "': expected " + join(names, ", "));
}

}  // namespace

DatasetFormat parse_dataset_format(const std::string& text) {
  return parse_choice<DatasetFormat, 3>(text, "--format",
                                        {{{"chexpert", DatasetFormat::kCheXpert},
                                          {"mimic-cxr", DatasetFormat::kMimicCxr},
                                          {"nih", DatasetFormat::kNih}}});
}

UncertainLabels parse_uncertain_labels(const std::string& text) {
  return parse_choice<UncertainLabels, 3>(
      text, "--uncertain",
      {{{"zero", UncertainLabels::kZero}, {"one", UncertainLabels::kOne}, {"drop", UncertainLabels::kDrop}}});
}

BlankLabels parse_blank_labels(const std::string& text) {
  return parse_choice<BlankLabels, 2>(text, "--blank", {{{"zero", BlankLabels::kZero}, {"drop", BlankLabels::kDrop}}});
}

ViewSelection parse_view_selection(const std::string& text) {
  return parse_choice<ViewSelection, 2>(text, "--views",
                                        {{{"frontal", ViewSelection::kFrontal}, {"all", ViewSelection::kAll}}});
}

SplitMethod parse_split_method(const std::string& text) {
  return parse_choice<SplitMethod, 2>(text, "--split",
                                      {{{"patient", SplitMethod::kPatient}, {"official", SplitMethod::kOfficial}}});
}

SensitiveAttribute parse_sensitive_attribute(const std::string& text) {
  SensitiveAttribute sa;
  if (text == "sex") return sa;
  if (text.rfind("age:", 0) == 0) {
    const auto threshold = parse_number(text.substr(4));
    if (!threshold || *threshold < 0.0)
      throw ConfigError("--sa '" + text + "': expected age:T with T an age in years, e.g. age:60");
    sa.kind = SensitiveAttribute::Kind::kAgeAtLeast;
    sa.age_threshold = *threshold;
    return sa;
  }
  if (text.rfind("column:", 0) == 0) {
    const auto equals = text.find('=', 7);
    if (equals == std::string::npos || equals == 7)
      throw ConfigError("--sa '" + text + "': expected column:NAME=VALUE, e.g. column:ViewPosition=AP");
    sa.kind = SensitiveAttribute::Kind::kColumnEquals;
    sa.column = text.substr(7, equals - 7);
    sa.value = text.substr(equals + 1);
    return sa;
  }
  throw ConfigError("--sa '" + text + "': expected sex, age:T or column:NAME=VALUE");
}

ImportResult import_dataset(const ImportOptions& options) {
  validate(options);
  const fs::path root = normal_root(options.root);
  SourceRows source = options.format == DatasetFormat::kCheXpert   ? read_chexpert(options, root)
                      : options.format == DatasetFormat::kMimicCxr ? read_mimic(options, root)
                                                                   : read_nih(options, root);
  const auto split = assign_splits(source.candidates, options, source.carve_validation_from_train);

  ImportResult result;
  ImportSummary& summary = result.summary;
  summary.tables_read = source.tables_read;
  std::array<std::int64_t, kDropReasonCount> dropped{};
  std::array<std::set<std::string>, 3> patients;
  std::unordered_map<std::string, std::pair<std::string, std::string>> split_of_patient;  // -> (split, where)
  const fs::path canonical_root = fs::weakly_canonical(root);
  for (std::size_t i = 0; i < source.candidates.size(); ++i) {
    const Candidate& c = source.candidates[i];
    auto drop = [&](DropReason reason) { ++dropped[reason]; };
    if (split[i].empty()) { drop(kNotInOfficialSplit); continue; }
    if (options.views == ViewSelection::kFrontal && c.view != "PA" && c.view != "AP") { drop(kViewNotFrontal); continue; }
    int label = 0;
    if (c.finding == Finding::kPositive) {
      label = 1;
    } else if (c.finding == Finding::kUncertain) {
      if (options.uncertain == UncertainLabels::kDrop) { drop(kUncertainLabel); continue; }
      label = options.uncertain == UncertainLabels::kOne ? 1 : 0;
    } else if (c.finding == Finding::kBlank && options.blank == BlankLabels::kDrop) {
      drop(kBlankLabel);
      continue;
    }
    int sa = 0;
    switch (options.sa.kind) {
      case SensitiveAttribute::Kind::kSex:
        if (c.sex < 0) { drop(kUnknownSex); continue; }
        sa = c.sex;
        break;
      case SensitiveAttribute::Kind::kAgeAtLeast:
        if (!c.age) { drop(kUnknownAge); continue; }
        sa = static_cast<double>(*c.age) >= options.sa.age_threshold ? 1 : 0;
        break;
      case SensitiveAttribute::Kind::kColumnEquals:
        sa = c.sa_field == options.sa.value ? 1 : 0;
        break;
    }
    const auto image = std::find_if(c.image_paths.begin(), c.image_paths.end(),
                                    [&](const fs::path& p) { return is_file(p) && inside(canonical_root, p); });
    if (image == c.image_paths.end())
      for (const auto& p : c.image_paths)
        if (is_file(p))
          throw DataError(c.where + ": image " + c.image_name + " resolves to " + fs::weakly_canonical(p).string() +
                          ", outside --root " + canonical_root.string() + " (a symlink, or a folder beside --root): refused");
    if (image == c.image_paths.end()) {
      if (options.skip_missing) { drop(kMissingImage); continue; }
      std::string looked = c.image_paths.empty() ? "no file of that name under " + root.string() : "";
      for (const auto& p : c.image_paths) looked += (looked.empty() ? "" : ", ") + p.string();
      throw DataError(c.where + ": image not found: " + c.image_name + " (looked for " + looked +
                      "; --skip-missing drops such rows)");
    }
    const auto split_index = static_cast<std::size_t>(
        std::find(kSplitNames.begin(), kSplitNames.end(), split[i]) - kSplitNames.begin());
    ManifestEntry entry;
    entry.image = image->lexically_normal().string();
    entry.split = split[i];
    entry.sex = c.sex;
    entry.label = label;
    entry.patient = c.patient;
    entry.age = c.age;
    entry.view = c.view;
    entry.sa = sa;
    if (const auto [first, fresh] = split_of_patient.try_emplace(c.patient, split[i], c.where);
        !fresh && first->second.first != split[i])
      throw DataError("patient " + c.patient + " is in " + first->second.first + " (" + first->second.second + ") and in " +
                      split[i] + " (" + c.where + "): one patient in two splits leaks into the test; remove one of the "
                      "rows, or use --split patient");
    ++summary.rows[split_index];
    summary.positives[split_index] += label;
    patients[split_index].insert(c.patient);
    if (c.sex >= 0) ++summary.known_sex;
    if (c.implausible_age) ++summary.implausible_age;
    if (c.sex == 1) ++summary.female;
    result.entries.push_back(std::move(entry));
  }
  for (std::size_t s = 0; s < 3; ++s) summary.patients[s] = static_cast<std::int64_t>(patients[s].size());
  for (int reason = 0; reason < kDropReasonCount; ++reason)
    if (dropped[static_cast<std::size_t>(reason)] > 0)
      summary.dropped.emplace_back(kDropReasonNames[static_cast<std::size_t>(reason)], dropped[static_cast<std::size_t>(reason)]);
  return result;
}

void write_import_manifest(const std::vector<ManifestEntry>& entries, const std::string& out_path, bool with_sa_column) {
  const fs::path out = fs::absolute(out_path);
  const fs::path folder = out.parent_path();
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw StoreError("--out '" + out_path + "': cannot create its folder: " + ec.message());
  // std::filesystem::relative(image, folder), with the folder's canonical form computed once.
  const fs::path canonical_folder = fs::weakly_canonical(folder, ec);
  if (ec) throw StoreError("--out '" + out_path + "': cannot resolve its folder: " + ec.message());
  std::ostringstream file;
  file << "path,split,sex,label,patient,age,view" << (with_sa_column ? ",sa" : "") << "\n";
  for (const auto& e : entries) {
    fs::path path = fs::weakly_canonical(e.image, ec).lexically_relative(canonical_folder);
    if (ec || path.empty()) path = fs::absolute(e.image);
    file << quote_csv(path.generic_string()) << ',' << e.split << ',' << (e.sex < 0 ? "" : std::to_string(e.sex)) << ','
         << e.label << ',' << quote_csv(e.patient) << ',' << (e.age ? std::to_string(*e.age) : "") << ','
         << quote_csv(e.view);
    if (with_sa_column) file << ',' << e.sa;
    file << '\n';
  }
  write_file_atomically(out.string(), file.str(), "--out '" + out_path + "'");
}

std::string describe_import(const ImportSummary& summary, const std::string& out_path) {
  std::ostringstream text;
  const std::int64_t total = summary.rows[0] + summary.rows[1] + summary.rows[2];
  text << "dne data import: wrote " << out_path << ": " << total << " rows from " << join(summary.tables_read, ", ")
       << "\n";
  for (std::size_t s = 0; s < 3; ++s)
    text << "  " << std::left << std::setw(5) << kSplitNames[s] << std::right << " " << summary.rows[s] << " rows, "
         << summary.positives[s] << " positive, " << summary.patients[s] << " patients\n";
  text << "  female share: ";
  if (summary.known_sex > 0)
    text << std::fixed << std::setprecision(3)
         << static_cast<double>(summary.female) / static_cast<double>(summary.known_sex) << " (" << summary.female
         << " of " << summary.known_sex << " rows with known sex)\n";
  else
    text << "n/a (no row with known sex)\n";
  std::int64_t dropped = 0;
  std::vector<std::string> reasons;
  for (const auto& [reason, rows] : summary.dropped) {
    dropped += rows;
    reasons.push_back(reason + " " + std::to_string(rows));
  }
  text << "  dropped " << dropped << " rows" << (reasons.empty() ? "" : ": " + join(reasons, ", ")) << "\n";
  if (summary.implausible_age > 0)
    text << "  " << summary.implausible_age << " rows with an age above " << static_cast<int>(kMaxAgeYears)
         << " years (data errors): age written as unknown\n";
  return text.str();
}

ImportSummary run_import(const ImportOptions& options) {
  if (options.out.empty()) throw ConfigError("--out FILE is required");
  if (is_folder(options.out)) throw ConfigError("--out '" + options.out + "' is a directory; give the manifest file to write");
  ImportResult result = import_dataset(options);
  write_import_manifest(result.entries, options.out, options.sa.kind != SensitiveAttribute::Kind::kSex);
  return std::move(result.summary);
}

}  // namespace dne::data
