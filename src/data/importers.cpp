// Importers (see importers.hpp and docs/datasets.md): one reader per published layout turns the
// dataset's tables into candidate rows (patient, sex, age, view, finding value, official split,
// where the image may be); one shared pipeline then assigns splits, applies the view, label and
// sensitive-attribute rules in a fixed order, checks that each kept image exists, and counts
// what it dropped and why.
//
// This file: the helpers the readers share (importer_parts.hpp), the pipeline, the option parsers,
// the manifest writing and the summary. The readers: import_chexpert.cpp, import_mimic.cpp and
// import_nih.cpp.
#include "dne/data/importers.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "dne/core/errors.hpp"
#include "dne/core/random.hpp"
#include "dne/data/csv.hpp"
#include "importer_parts.hpp"

namespace dne::data::import_detail {
namespace {

std::string lower(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

}  // namespace

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}
bool is_folder(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

std::string trim(const std::string& text) {
  const auto begin = text.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t\r") - begin + 1);
}

bool all_digits(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

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

int parse_sex(const std::string& text, const std::string& column, const std::string& where) {
  const std::string value = lower(text);
  if (value == "female" || value == "f") return 1;
  if (value == "male" || value == "m") return 0;
  if (value.empty() || value == "unknown" || value == "u") return -1;
  throw DataError(where + ": " + column + " is '" + text + "' (expected Female/F, Male/M, Unknown or blank)");
}

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

}  // namespace dne::data::import_detail

namespace dne::data {
using namespace import_detail;  // the parts the readers share, named as when they were file-local
namespace {

constexpr std::array<const char*, 3> kSplitNames = {"train", "val", "test"};

/// Why a row was dropped, in the order the rules are applied (ImportSummary::dropped).
enum DropReason { kNotInOfficialSplit, kViewNotFrontal, kUncertainLabel, kBlankLabel, kUnknownSex, kUnknownAge,
                  kMissingImage, kDropReasonCount };
constexpr std::array<const char*, kDropReasonCount> kDropReasonNames = {
    "not in the official split", "view not PA/AP", "uncertain label", "blank label",
    "unknown sex",               "unknown age",    "missing image"};

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
