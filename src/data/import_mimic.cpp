// The MIMIC-CXR-JPG reader of the importers (see importer_parts.hpp, importers.hpp and
// docs/datasets.md).
//
// MIMIC-CXR-JPG 2.0.0: metadata, chexpert (study level) and split tables; sex and age from
// MIMIC-IV's patients table; images at files/pXX/pSUBJECT/sSTUDY/DICOM.jpg.
#include "importer_parts.hpp"

#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/data/csv.hpp"

namespace dne::data::import_detail {
namespace {

/// `stem`.csv.gz or `stem`.csv in `folder`; empty when neither exists.
fs::path find_table(const fs::path& folder, const std::string& stem) {
  for (const char* ext : {".csv.gz", ".csv"}) {
    const auto candidate = folder / (stem + ext);
    if (is_file(candidate)) return candidate;
  }
  return {};
}

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

}  // namespace

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

}  // namespace dne::data::import_detail
