// Importers: a manifest CSV (the loader's input) from CheXpert, MIMIC-CXR-JPG or NIH ChestX-ray14
// in the layouts their publishers ship, with the labelling, view, sensitive-attribute and split
// rules researchers choose between made explicit as options (docs/datasets.md).
//
// The manifest has the header `path,split,sex,label,patient,age,view` (plus `sa` when the sensitive
// attribute is not sex) and one row per image, in the order of the dataset's own table. Image files
// are checked for existence only (never decoded). Every option error is a dne::ConfigError naming
// the option; every problem with a dataset file is a dne::DataError naming the file (and line).
// Torch-free, no HDF5: part of dne_base.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dne::data {

/// Which published layout --root holds.
enum class DatasetFormat { kCheXpert, kMimicCxr, kNih };
/// What a -1.0 ("uncertain") finding becomes: 0 (U-Zeros), 1 (U-Ones) or the row is dropped.
enum class UncertainLabels { kZero, kOne, kDrop };
/// What a blank finding (not mentioned in the report) becomes: 0, or the row is dropped.
enum class BlankLabels { kZero, kDrop };
/// Which views are kept: PA and AP only (frontal), or every view.
enum class ViewSelection { kFrontal, kAll };
/// How rows go to train / val / test: by a seeded permutation of patients, or the dataset's own.
enum class SplitMethod { kPatient, kOfficial };

/// The --sa rule: which binary sensitive attribute the manifest's `sa` column holds.
struct SensitiveAttribute {
  enum class Kind { kSex, kAgeAtLeast, kColumnEquals };
  Kind kind = Kind::kSex;
  double age_threshold = 0.0;  // kAgeAtLeast: sa = (age >= age_threshold)
  std::string column;          // kColumnEquals: sa = (the main table's `column` == `value`)
  std::string value;
};

/// Stream steps of CounterStream(seed, StreamPurpose::kSplit, step, 0) used by the importers
/// (carve_validation uses steps 0..3 of the same purpose; these never collide with it).
/// The patient split (--split patient): permutation of the sorted patient ids.
inline constexpr std::uint32_t kImportPatientSplitStep = 1001;
/// The validation carve of an official training split (CheXpert, NIH): permutation of its patients.
inline constexpr std::uint32_t kImportValidationCarveStep = 1002;

/// Everything `dne data import` takes. Unset fractions take their defaults (val 0.1, test 0.2).
struct ImportOptions {
  DatasetFormat format = DatasetFormat::kCheXpert;
  std::string root;  // the dataset folder (--root)
  std::string task;  // the finding that is the label (--task)
  std::string out;   // the manifest to write (--out); used by run_import only
  UncertainLabels uncertain = UncertainLabels::kDrop;
  BlankLabels blank = BlankLabels::kZero;
  ViewSelection views = ViewSelection::kFrontal;
  SensitiveAttribute sa;
  SplitMethod split = SplitMethod::kPatient;
  std::optional<double> val_fraction;   // default 0.1; not allowed with MIMIC's official split
  std::optional<double> test_fraction;  // default 0.2; not allowed with --split official
  std::uint64_t seed = 0;
  std::string patients_file;  // MIMIC only: MIMIC-IV patients.csv[.gz]; empty: search --root
  bool skip_missing = false;  // drop rows whose image is missing instead of failing
};

/// One manifest row before it is written.
struct ManifestEntry {
  std::string image;  // the image file's absolute path (made relative to the manifest when written)
  std::string split;  // "train", "val" or "test"
  int sex = -1;       // 1 female, 0 male, -1 unknown
  int label = 0;      // 0 / 1
  std::string patient;
  std::optional<std::int64_t> age;  // whole years
  std::string view;                 // as the dataset states it: PA, AP, LATERAL, LL, ...
  int sa = 0;                       // the --sa rule's value (equals sex under --sa sex)
};

/// What an import kept and dropped; splits are indexed 0 train, 1 val, 2 test.
struct ImportSummary {
  std::vector<std::string> tables_read;
  std::array<std::int64_t, 3> rows{};
  std::array<std::int64_t, 3> positives{};
  std::array<std::int64_t, 3> patients{};
  std::int64_t female = 0;     // rows with sex 1
  std::int64_t known_sex = 0;  // rows with sex 0 or 1
  std::int64_t implausible_age = 0;  // rows kept whose table age was above 150 years: written as unknown
  /// (reason, rows) for every reason that dropped at least one row, in the order the rules are
  /// applied: not in the official split, view not PA/AP, uncertain label, blank label, unknown sex,
  /// unknown age, missing image. A row is counted under the first rule that drops it.
  std::vector<std::pair<std::string, std::int64_t>> dropped;
};

struct ImportResult {
  std::vector<ManifestEntry> entries;  // in the dataset's table order
  ImportSummary summary;
};

/// Option parsers: each throws dne::ConfigError "--<option> '<text>': expected ..." on bad text.
DatasetFormat parse_dataset_format(const std::string& text);      // chexpert | mimic-cxr | nih
UncertainLabels parse_uncertain_labels(const std::string& text);  // zero | one | drop
BlankLabels parse_blank_labels(const std::string& text);          // zero | drop
ViewSelection parse_view_selection(const std::string& text);      // frontal | all
SplitMethod parse_split_method(const std::string& text);          // patient | official
SensitiveAttribute parse_sensitive_attribute(const std::string& text);  // sex | age:T | column:NAME=VALUE

/// Reads the dataset under options.root and applies the rules; writes nothing. Throws
/// dne::ConfigError for bad options (naming the option; an unknown task lists the available
/// findings) and dne::DataError for missing or malformed dataset files ("<file>:<line>: ...",
/// including a missing image unless options.skip_missing).
ImportResult import_dataset(const ImportOptions& options);

/// Writes `entries` as the manifest `out_path` atomically (write_file_atomically: a temporary
/// file beside it, then renamed), so that a failed write leaves no manifest. Image paths become relative to the manifest's folder
/// (std::filesystem::relative, forward slashes; absolute where no relative path exists). The `sa`
/// column is written only when `with_sa_column`. Creates the folder if needed; throws
/// dne::StoreError if it cannot write.
void write_import_manifest(const std::vector<ManifestEntry>& entries, const std::string& out_path,
                           bool with_sa_column);

/// The summary lines `dne data import` prints (rows, positives and patients per split, female
/// share, dropped rows by reason), each ending in a newline.
std::string describe_import(const ImportSummary& summary, const std::string& out_path);

/// import_dataset + write_import_manifest(options.out): the whole of `dne data import`. Throws
/// dne::ConfigError if options.out is empty or a directory.
ImportSummary run_import(const ImportOptions& options);

}  // namespace dne::data
