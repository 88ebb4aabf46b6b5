// The importers' shared parts (see importers.hpp): the candidate row each format's reader hands
// to the shared pipeline, the field parsers and option messages the readers share (defined in
// importers.cpp), and the readers themselves (import_chexpert.cpp, import_mimic.cpp,
// import_nih.cpp). Internal to the data module.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dne/data/csv.hpp"
#include "dne/data/importers.hpp"

namespace dne::data {
namespace fs = std::filesystem;
}  // namespace dne::data

namespace dne::data::import_detail {

/// Whether `p` is a regular file / a folder; a path that cannot be examined (permissions, I/O)
/// counts as absent, so the caller's message names it instead of an internal error.
bool is_file(const fs::path& p);
bool is_folder(const fs::path& p);

/// A finding's value in the dataset's table.
enum class Finding { kNegative, kPositive, kUncertain, kBlank };

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

std::string join(const std::vector<std::string>& items, const std::string& separator);
std::string trim(const std::string& text);
bool all_digits(const std::string& text);

/// A number filling the whole of `text`, or nullopt.
std::optional<double> parse_number(const std::string& text);

Finding parse_finding(const std::string& text, const std::string& column, const std::string& where);

/// 1 female, 0 male, -1 unknown (Female/F, Male/M, Unknown/U/blank; any case).
int parse_sex(const std::string& text, const std::string& column, const std::string& where);

constexpr double kMaxAgeYears = 150.0;  // above: a data-entry error, not an age (NIH's table has a few, up to 414)

/// Whole years from "58", "58.0" or the old NIH form "058Y" (also "011M" months, "005D" days).
/// An age above kMaxAgeYears (or one too large for an integer, such as 1e300) is unknown, and
/// `implausible` is set so that the summary can count it.
std::optional<std::int64_t> parse_age(const std::string& text, const std::string& column, const std::string& where,
                                      bool& implausible);

[[noreturn]] void unknown_task(const std::string& task, const std::string& source,
                               const std::vector<std::string>& available);

/// The columns of `table` other than `exclude`, in table order.
std::vector<std::string> columns_except(const CsvTable& table, const std::vector<std::string>& exclude);

[[noreturn]] void unknown_sa_column(const SensitiveAttribute& sa, const std::vector<const CsvTable*>& tables);

/// The readers, one per published layout: the dataset's tables under `root` (--root made
/// absolute and normal) as candidate rows, in the order of the dataset's own table.
/// CheXpert v1.0 / v1.0-small (import_chexpert.cpp).
SourceRows read_chexpert(const ImportOptions& options, const fs::path& root);
/// MIMIC-CXR-JPG 2.0.0 with MIMIC-IV's patients table (import_mimic.cpp).
SourceRows read_mimic(const ImportOptions& options, const fs::path& root);
/// NIH ChestX-ray14 (import_nih.cpp).
SourceRows read_nih(const ImportOptions& options, const fs::path& root);

}  // namespace dne::data::import_detail
