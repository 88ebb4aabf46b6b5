// Unit tests for dne::data importers (`dne data import`): CheXpert, MIMIC-CXR-JPG and NIH
// ChestX-ray14.
//
// Each test writes a tiny fake dataset in the published layout into a temporary folder (the
// tables literally, as the publishers ship them: CheXpert's 19 columns, MIMIC's gzip tables and
// MIMIC-IV's patients table, NIH's bracketed header with its trailing comma), a few real PNG/JPEG
// images (stb_image_write), runs the importer and compares the written manifest row by row with a
// table written by hand from the rules in docs/datasets.md. The split test re-derives the expected
// assignment from the documented rule (sorted ids, CounterStream(seed, kSplit, 1001, 0)), not from
// the importer's output.
#include <gtest/gtest.h>
#include <stb_image_write.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/core/random.hpp"
#include "dne/data/csv.hpp"
#include "dne/data/importers.hpp"
#include "test_support.hpp"

namespace dd = dne::data;
namespace fs = std::filesystem;

namespace {

using Table = std::vector<std::vector<std::string>>;

using dne_test::expect_error;

/// A fresh folder per test, removed afterwards, with writers for tables and images.
class ImportFixture : public dne_test::TempDirTest {
 protected:
  void write_gzip(const std::string& rel, const std::string& text) const {
    fs::create_directories((dir_ / rel).parent_path());
    gzFile file = gzopen(path(rel).c_str(), "wb");
    ASSERT_NE(file, nullptr);
    ASSERT_EQ(gzwrite(file, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
    gzclose(file);
  }
  /// A real 8x8 grey image (PNG or JPEG by the extension).
  void write_image(const std::string& rel) const {
    fs::create_directories((dir_ / rel).parent_path());
    std::vector<unsigned char> pixels(64);
    for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<unsigned char>(4 * i);
    const int ok = fs::path(rel).extension() == ".png" ? stbi_write_png(path(rel).c_str(), 8, 8, 1, pixels.data(), 8)
                                                       : stbi_write_jpg(path(rel).c_str(), 8, 8, 1, pixels.data(), 90);
    ASSERT_NE(ok, 0) << rel;
  }
  /// A file that exists (the importer checks existence only).
  void touch(const std::string& rel) const { write_text(rel, "x"); }

  /// The manifest's rows (without the header), after checking the header.
  Table manifest_rows(const std::string& rel, const std::vector<std::string>& header) const {
    const auto table = dd::read_csv(path(rel));
    EXPECT_EQ(table.header, header);
    Table rows;
    for (const auto& row : table.rows) rows.push_back(row.fields);
    return rows;
  }
  /// One column of the manifest.
  std::vector<std::string> manifest_column(const std::string& rel, const std::string& name) const {
    const auto table = dd::read_csv(path(rel));
    const int c = table.require(name);
    std::vector<std::string> out;
    for (const auto& row : table.rows) out.push_back(row.fields[static_cast<std::size_t>(c)]);
    return out;
  }
};

const std::vector<std::string> kHeader = {"path", "split", "sex", "label", "patient", "age", "view"};
const std::vector<std::string> kHeaderWithSa = {"path", "split", "sex", "label", "patient", "age", "view", "sa"};

// ------------------------------------------------------------------------------------------------
// CheXpert

// Columns after AP/PA: No Finding, Enlarged Cardiomediastinum, Cardiomegaly, Lung Opacity,
// Lung Lesion, Edema (6th), Consolidation, Pneumonia, Atelectasis, Pneumothorax,
// Pleural Effusion (11th), Pleural Other, Fracture, Support Devices.
const char* kCheXpertHeader =
    "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
    "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,"
    "Fracture,Support Devices\n";

class ImportChexpert : public ImportFixture {
 protected:
  /// train.csv (6 rows) and valid.csv (3 rows) of CheXpert-v1.0-small in `folder`, with images.
  ///   line  patient      sex      age view     Edema  Pleural Effusion
  ///   2     00001 s1     Female   68  AP       -1.0   1.0
  ///   3     00001 s1     Female   68  Lateral  -1.0   1.0
  ///   4     00002 s1     Male     87  PA       0.0    -1.0
  ///   5     00002 s2     Male     87  AP       1.0    (blank)
  ///   6     00003 s1     Unknown  50  PA       blank  0.0
  ///   7     00004 s1     Female   41  AP       1.0    0.0
  ///   valid 2  64541     Male     73  AP       0.0    1.0
  ///   valid 3  64542     Female   70  PA       0.0    0.0
  ///   valid 4  64542     Female   70  Lateral  0.0    0.0
  void write_small(const std::string& folder = "CheXpert-v1.0-small") {
    write_text(folder + "/train.csv",
               std::string(kCheXpertHeader) +
                   "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,,,,,,-1.0,,,,,1.0,,,1.0\n"
                   "CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg,Female,68,Lateral,,,,,,,-1.0,,,,,1.0,,,1.0\n"
                   "CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg,Male,87,Frontal,PA,,,,,,0.0,,,,,-1.0,,,\n"
                   "CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg,Male,87,Frontal,AP,,,,,,1.0,,,,,,,,\n"
                   "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg,Unknown,50,Frontal,PA,,,,,,,,,,,0.0,,,\n"
                   "CheXpert-v1.0-small/train/patient00004/study1/view1_frontal.jpg,Female,41,Frontal,AP,,,,,,1.0,,,,,0.0,,,\n");
    write_text(folder + "/valid.csv",
               std::string(kCheXpertHeader) +
                   "CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg,Male,73,Frontal,AP,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0,0.0,0.0,0.0\n"
                   "CheXpert-v1.0-small/valid/patient64542/study1/view1_frontal.jpg,Female,70,Frontal,PA,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0\n"
                   "CheXpert-v1.0-small/valid/patient64542/study1/view2_lateral.jpg,Female,70,Lateral,,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0\n");
    for (const char* image : {"train/patient00001/study1/view1_frontal.jpg", "train/patient00001/study1/view2_lateral.jpg",
                              "train/patient00002/study1/view1_frontal.jpg", "train/patient00002/study2/view1_frontal.jpg",
                              "train/patient00003/study1/view1_frontal.jpg", "train/patient00004/study1/view1_frontal.jpg",
                              "valid/patient64541/study1/view1_frontal.jpg", "valid/patient64542/study1/view1_frontal.jpg",
                              "valid/patient64542/study1/view2_lateral.jpg"})
      write_image(folder + "/" + image);
  }
  dd::ImportOptions options(const std::string& out = "out/manifest.csv") const {
    dd::ImportOptions o;
    o.format = dd::DatasetFormat::kCheXpert;
    o.root = path("CheXpert-v1.0-small");
    o.task = "Pleural Effusion";
    o.out = path(out);
    return o;
  }
};

TEST_F(ImportChexpert, DefaultRulesWithTheOfficialSplit) {
  write_small();
  auto o = options();
  o.split = dd::SplitMethod::kOfficial;
  o.val_fraction = 0.0;
  const auto summary = dd::run_import(o);
  const std::string base = "../CheXpert-v1.0-small/";
  // Lateral views (train 3, valid 4), the uncertain effusion (4) and unknown sex (6) are dropped;
  // the blank effusion (5) is a 0.
  const Table expected = {
      {base + "train/patient00001/study1/view1_frontal.jpg", "train", "1", "1", "patient00001", "68", "AP"},
      {base + "train/patient00002/study2/view1_frontal.jpg", "train", "0", "0", "patient00002", "87", "AP"},
      {base + "train/patient00004/study1/view1_frontal.jpg", "train", "1", "0", "patient00004", "41", "AP"},
      {base + "valid/patient64541/study1/view1_frontal.jpg", "test", "0", "1", "patient64541", "73", "AP"},
      {base + "valid/patient64542/study1/view1_frontal.jpg", "test", "1", "0", "patient64542", "70", "PA"},
  };
  EXPECT_EQ(manifest_rows("out/manifest.csv", kHeader), expected);
  EXPECT_EQ(summary.rows, (std::array<std::int64_t, 3>{3, 0, 2}));
  EXPECT_EQ(summary.positives, (std::array<std::int64_t, 3>{1, 0, 1}));
  EXPECT_EQ(summary.patients, (std::array<std::int64_t, 3>{3, 0, 2}));
  EXPECT_EQ(summary.female, 3);
  EXPECT_EQ(summary.known_sex, 5);
  const std::vector<std::pair<std::string, std::int64_t>> dropped = {
      {"view not PA/AP", 2}, {"uncertain label", 1}, {"unknown sex", 1}};
  EXPECT_EQ(summary.dropped, dropped);
  EXPECT_FALSE(fs::exists(path("out/manifest.csv.tmp")));
  const std::string text = dd::describe_import(summary, o.out);
  EXPECT_NE(text.find("female share: 0.600 (3 of 5"), std::string::npos) << text;
  EXPECT_NE(text.find("dropped 4 rows: view not PA/AP 2, uncertain label 1, unknown sex 1"), std::string::npos) << text;
}

TEST_F(ImportChexpert, UncertainLabelsZeroOneOrDrop) {
  write_small();
  auto o = options();
  o.split = dd::SplitMethod::kOfficial;
  o.val_fraction = 0.0;
  // Rows kept under sex + frontal: train 2, 4, 5, 7 and valid 2, 3; line 4's effusion is -1.0.
  o.uncertain = dd::UncertainLabels::kZero;
  dd::run_import(o);
  EXPECT_EQ(manifest_column("out/manifest.csv", "label"), (std::vector<std::string>{"1", "0", "0", "0", "1", "0"}));
  EXPECT_EQ(manifest_column("out/manifest.csv", "patient")[1], "patient00002");
  o.uncertain = dd::UncertainLabels::kOne;
  dd::run_import(o);
  EXPECT_EQ(manifest_column("out/manifest.csv", "label"), (std::vector<std::string>{"1", "1", "0", "0", "1", "0"}));
  o.uncertain = dd::UncertainLabels::kDrop;
  dd::run_import(o);
  EXPECT_EQ(manifest_column("out/manifest.csv", "label"), (std::vector<std::string>{"1", "0", "0", "1", "0"}));
}

TEST_F(ImportChexpert, BlankDropAndAllViews) {
  write_small();
  auto o = options("CheXpert-v1.0-small/manifest.csv");  // manifest inside the dataset folder
  o.split = dd::SplitMethod::kOfficial;
  o.val_fraction = 0.0;
  o.task = "Edema";
  o.blank = dd::BlankLabels::kDrop;
  o.views = dd::ViewSelection::kAll;
  o.uncertain = dd::UncertainLabels::kOne;
  const auto summary = dd::run_import(o);
  // Edema: -1.0 on lines 2-3 (-> 1), blank on line 6 (dropped; it also has unknown sex: the label
  // rule comes first), lateral views kept as LATERAL.
  const Table expected = {
      {"train/patient00001/study1/view1_frontal.jpg", "train", "1", "1", "patient00001", "68", "AP"},
      {"train/patient00001/study1/view2_lateral.jpg", "train", "1", "1", "patient00001", "68", "LATERAL"},
      {"train/patient00002/study1/view1_frontal.jpg", "train", "0", "0", "patient00002", "87", "PA"},
      {"train/patient00002/study2/view1_frontal.jpg", "train", "0", "1", "patient00002", "87", "AP"},
      {"train/patient00004/study1/view1_frontal.jpg", "train", "1", "1", "patient00004", "41", "AP"},
      {"valid/patient64541/study1/view1_frontal.jpg", "test", "0", "0", "patient64541", "73", "AP"},
      {"valid/patient64542/study1/view1_frontal.jpg", "test", "1", "0", "patient64542", "70", "PA"},
      {"valid/patient64542/study1/view2_lateral.jpg", "test", "1", "0", "patient64542", "70", "LATERAL"},
  };
  EXPECT_EQ(manifest_rows("CheXpert-v1.0-small/manifest.csv", kHeader), expected);
  const std::vector<std::pair<std::string, std::int64_t>> dropped = {{"blank label", 1}};
  EXPECT_EQ(summary.dropped, dropped);
}

TEST_F(ImportChexpert, AgeAndColumnSensitiveAttributes) {
  write_small();
  auto o = options();
  o.split = dd::SplitMethod::kOfficial;
  o.val_fraction = 0.0;
  o.sa = dd::parse_sensitive_attribute("age:70");
  dd::run_import(o);
  // Unknown sex no longer drops line 6 (sex written empty); sa = age >= 70.
  const std::string base = "../CheXpert-v1.0-small/";
  const Table expected = {
      {base + "train/patient00001/study1/view1_frontal.jpg", "train", "1", "1", "patient00001", "68", "AP", "0"},
      {base + "train/patient00002/study2/view1_frontal.jpg", "train", "0", "0", "patient00002", "87", "AP", "1"},
      {base + "train/patient00003/study1/view1_frontal.jpg", "train", "", "0", "patient00003", "50", "PA", "0"},
      {base + "train/patient00004/study1/view1_frontal.jpg", "train", "1", "0", "patient00004", "41", "AP", "0"},
      {base + "valid/patient64541/study1/view1_frontal.jpg", "test", "0", "1", "patient64541", "73", "AP", "1"},
      {base + "valid/patient64542/study1/view1_frontal.jpg", "test", "1", "0", "patient64542", "70", "PA", "1"},
  };
  EXPECT_EQ(manifest_rows("out/manifest.csv", kHeaderWithSa), expected);

  o.sa = dd::parse_sensitive_attribute("column:AP/PA=PA");
  dd::run_import(o);
  EXPECT_EQ(manifest_column("out/manifest.csv", "sa"), (std::vector<std::string>{"0", "0", "1", "0", "0", "1"}));
  o.sa = dd::parse_sensitive_attribute("column:Support Devices=1.0");
  dd::run_import(o);
  EXPECT_EQ(manifest_column("out/manifest.csv", "sa"), (std::vector<std::string>{"1", "0", "0", "0", "0", "0"}));

  o.sa = dd::parse_sensitive_attribute("column:Race=White");
  expect_error<dne::ConfigError>([&] { dd::import_dataset(o); }, {"--sa column:Race=White", "no column 'Race'", "Frontal/Lateral"});
}

TEST_F(ImportChexpert, ImagesFoundInsideARenamedDatasetFolder) {
  // The folder is called "chexpert" but Path still starts with CheXpert-v1.0-small/: neither
  // DIR/../Path nor DIR/Path exists, DIR/<Path without its first component> does.
  write_small("chexpert");
  auto o = options("chexpert/manifest.csv");
  o.root = path("chexpert") + "/";  // a trailing slash must not change DIR's parent
  o.split = dd::SplitMethod::kOfficial;
  o.val_fraction = 0.0;
  dd::run_import(o);
  EXPECT_EQ(manifest_column("chexpert/manifest.csv", "path"),
            (std::vector<std::string>{"train/patient00001/study1/view1_frontal.jpg",
                                      "train/patient00002/study2/view1_frontal.jpg",
                                      "train/patient00004/study1/view1_frontal.jpg",
                                      "valid/patient64541/study1/view1_frontal.jpg",
                                      "valid/patient64542/study1/view1_frontal.jpg"}));
}

TEST_F(ImportChexpert, MissingImageNamesTheLineAndLeavesNoManifest) {
  write_small();
  fs::remove(path("CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg"));
  auto o = options();
  o.split = dd::SplitMethod::kOfficial;
  expect_error<dne::DataError>([&] { dd::run_import(o); },
                               {"train.csv:5", "image not found", "patient00002/study2/view1_frontal.jpg"});
  EXPECT_FALSE(fs::exists(path("out/manifest.csv")));
  EXPECT_FALSE(fs::exists(path("out/manifest.csv.tmp")));
  // A missing image of a row dropped anyway (a lateral view) is no error.
  write_small();
  fs::remove(path("CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg"));
  EXPECT_NO_THROW(dd::run_import(o));

  write_small();
  fs::remove(path("CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg"));
  o.skip_missing = true;
  const auto summary = dd::run_import(o);
  const std::vector<std::pair<std::string, std::int64_t>> dropped = {
      {"view not PA/AP", 2}, {"uncertain label", 1}, {"unknown sex", 1}, {"missing image", 1}};
  EXPECT_EQ(summary.dropped, dropped);
  EXPECT_EQ(manifest_column("out/manifest.csv", "patient"),
            (std::vector<std::string>{"patient00001", "patient00004", "patient64541", "patient64542"}));
}

TEST_F(ImportChexpert, UnknownTaskListsTheFindings) {
  write_small();
  auto o = options();
  o.task = "Effusion";
  expect_error<dne::ConfigError>([&] { dd::run_import(o); },
                                 {"--task 'Effusion'", "CheXpert train.csv", "No Finding", "Pleural Effusion", "Support Devices"});
  o.task = "Sex";  // a metadata column is no finding
  expect_error<dne::ConfigError>([&] { dd::run_import(o); }, {"--task 'Sex'"});
  EXPECT_FALSE(fs::exists(path("out/manifest.csv")));
}

TEST_F(ImportChexpert, MissingTablesAndBadOptionsNameTheFileOrOption) {
  auto o = options();
  o.root = path("nowhere");
  expect_error<dne::ConfigError>([&] { dd::run_import(o); }, {"--root", "nowhere"});
  fs::create_directories(path("empty"));
  o.root = path("empty");
  expect_error<dne::DataError>([&] { dd::run_import(o); }, {"train.csv", "not found"});
  write_small();
  o = options();
  o.split = dd::SplitMethod::kOfficial;
  o.test_fraction = 0.2;
  expect_error<dne::ConfigError>([&] { dd::run_import(o); }, {"--test-fraction", "official"});
  o = options();
  o.val_fraction = 0.5;
  o.test_fraction = 0.5;
  expect_error<dne::ConfigError>([&] { dd::run_import(o); }, {"--val-fraction + --test-fraction"});
  o = options();
  o.test_fraction = -0.1;
  expect_error<dne::ConfigError>([&] { dd::run_import(o); }, {"--test-fraction"});
  o = options();
  o.patients_file = path("patients.csv");
  expect_error<dne::ConfigError>([&] { dd::run_import(o); }, {"--patients", "mimic-cxr"});
  o = options();
  o.out = path("out");
  fs::create_directories(path("out"));
  expect_error<dne::ConfigError>([&] { dd::run_import(o); }, {"--out", "is a directory"});
  // A malformed value in the table names the line.
  write_text("bad/train.csv", std::string(kCheXpertHeader) +
                                  "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,,,,,,,,,,,yes,,,\n");
  write_text("bad/valid.csv", kCheXpertHeader);
  o = options();
  o.root = path("bad");
  expect_error<dne::DataError>([&] { dd::run_import(o); }, {"train.csv:2", "Pleural Effusion", "'yes'"});
}

TEST_F(ImportChexpert, PatientSplitFollowsTheDocumentedPermutation) {
  write_small();
  auto o = options();
  o.views = dd::ViewSelection::kAll;
  o.uncertain = dd::UncertainLabels::kZero;
  o.sa = dd::parse_sensitive_attribute("age:0");  // keep line 6 too: every row is kept
  o.seed = 11;
  dd::run_import(o);
  // docs/datasets.md: the 6 patient ids sorted, permuted by CounterStream(seed, kSplit, 1001, 0);
  // the first round(0.2 * 6) = 1 is test, the next round(0.1 * 6) = 1 is val, the rest train.
  const std::vector<std::string> sorted = {"patient00001", "patient00002", "patient00003",
                                           "patient00004", "patient64541", "patient64542"};
  dne::CounterStream stream(11, dne::StreamPurpose::kSplit, 1001, 0);
  const auto order = dne::random_permutation(6, stream);
  std::map<std::string, std::string> expected_split;
  for (std::size_t k = 0; k < 6; ++k)
    expected_split[sorted[static_cast<std::size_t>(order[k])]] = k == 0 ? "test" : k == 1 ? "val" : "train";
  const auto patients = manifest_column("out/manifest.csv", "patient");
  const auto splits = manifest_column("out/manifest.csv", "split");
  ASSERT_EQ(patients.size(), 9u);
  for (std::size_t i = 0; i < patients.size(); ++i) EXPECT_EQ(splits[i], expected_split.at(patients[i])) << patients[i];
}

TEST_F(ImportChexpert, ManyPatientsNeverSpanTwoSplits) {
  // 50 training patients with 1-3 studies of 1-2 images each, 3 validation patients.
  std::string train = kCheXpertHeader, valid = kCheXpertHeader;
  std::int64_t train_rows = 0;
  for (int p = 1; p <= 50; ++p) {
    char id[32];
    std::snprintf(id, sizeof id, "patient%05d", p);
    for (int s = 1; s <= 1 + p % 3; ++s)
      for (int v = 1; v <= 1 + (p + s) % 2; ++v) {
        const std::string image = std::string("train/") + id + "/study" + std::to_string(s) + "/view" + std::to_string(v) + "_frontal.jpg";
        train += "CheXpert-v1.0-small/" + image + (p % 2 ? ",Female," : ",Male,") + std::to_string(20 + p) +
                 ",Frontal,PA,,,,,,,,,,," + (p % 4 == 0 ? "1.0" : "0.0") + ",,,\n";
        touch("CheXpert-v1.0-small/" + image);
        ++train_rows;
      }
  }
  for (int p = 64541; p <= 64543; ++p) {
    const std::string image = "valid/patient" + std::to_string(p) + "/study1/view1_frontal.jpg";
    valid += "CheXpert-v1.0-small/" + image + ",Male,60,Frontal,AP,,,,,,,,,,,1.0,,,\n";
    touch("CheXpert-v1.0-small/" + image);
  }
  write_text("CheXpert-v1.0-small/train.csv", train);
  write_text("CheXpert-v1.0-small/valid.csv", valid);

  auto split_of_patients = [&](const dd::ImportOptions& o) {
    dd::run_import(o);
    const auto patients = manifest_column("out/manifest.csv", "patient");
    const auto splits = manifest_column("out/manifest.csv", "split");
    std::map<std::string, std::set<std::string>> by_patient;
    for (std::size_t i = 0; i < patients.size(); ++i) by_patient[patients[i]].insert(splits[i]);
    std::map<std::string, std::string> result;
    for (const auto& [patient, set] : by_patient) {
      EXPECT_EQ(set.size(), 1u) << patient << " is in several splits";
      result[patient] = *set.begin();
    }
    EXPECT_EQ(patients.size(), static_cast<std::size_t>(train_rows + 3));
    return result;
  };
  auto count = [](const std::map<std::string, std::string>& split, const std::string& name) {
    return std::count_if(split.begin(), split.end(), [&](const auto& kv) { return kv.second == name; });
  };

  auto o = options();
  o.seed = 3;
  const auto a = split_of_patients(o);
  ASSERT_EQ(a.size(), 53u);
  EXPECT_EQ(count(a, "test"), 11);  // round(0.2 * 53 = 10.6)
  EXPECT_EQ(count(a, "val"), 5);    // round(0.1 * 53 = 5.3)
  EXPECT_EQ(count(a, "train"), 37);
  EXPECT_EQ(split_of_patients(o), a);  // deterministic
  o.seed = 4;
  EXPECT_NE(split_of_patients(o), a);
  // The assignment does not depend on the label rules (all patients are permuted, before filtering).
  o.seed = 3;
  o.blank = dd::BlankLabels::kDrop;
  EXPECT_EQ(split_of_patients(o), a);

  // Official split: valid.csv is test; val is carved from train.csv's 50 patients by patient.
  o = options();
  o.split = dd::SplitMethod::kOfficial;
  o.val_fraction = 0.5;
  const auto b = split_of_patients(o);
  EXPECT_EQ(count(b, "test"), 3);
  EXPECT_EQ(count(b, "val"), 25);
  EXPECT_EQ(count(b, "train"), 25);
  for (int p = 64541; p <= 64543; ++p) EXPECT_EQ(b.at("patient" + std::to_string(p)), "test");
}

// ------------------------------------------------------------------------------------------------
// MIMIC-CXR-JPG

class ImportMimic : public ImportFixture {
 protected:
  static constexpr const char* kD1 = "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014";
  static constexpr const char* kD2 = "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962";
  static constexpr const char* kD3 = "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab";
  static constexpr const char* kD4 = "68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714";
  static constexpr const char* kD5 = "096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4";
  static constexpr const char* kD6 = "fffabebf-74fd3a1f-673b6b41-96ec0ac9-2ab69818";

  /// MIMIC-CXR-JPG 2.0.0 in mimic/ (gzip or plain tables) and MIMIC-IV's patients table in
  /// mimic/mimiciv/hosp/ (or `patients_rel`).
  ///   line dicom subject  study     view     Pleural Effusion   patients.csv
  ///   2    D1    10000032 50414267  PA       0.0                F 52
  ///   3    D2    10000032 50414267  LATERAL  0.0                F 52
  ///   4    D3    10000032 53189527  AP       1.0                F 52
  ///   5    D4    10000764 57375967  AP       (no chexpert row)  M 86
  ///   6    D5    10000898 50771383  PA       1.0                (no row)
  ///   7    D6    10001176 53186264  PA       -1.0               F 64
  /// Official split: D1-D3, D6 train, D4 validate, D5 test.
  void write_small(bool gzip, const std::string& patients_rel = "mimic/mimiciv/hosp/patients.csv.gz") {
    auto write_table = [&](const std::string& stem, const std::string& text) {
      if (gzip) write_gzip("mimic/" + stem + ".csv.gz", text);
      else write_text("mimic/" + stem + ".csv", text);
    };
    const std::string d1 = kD1, d2 = kD2, d3 = kD3, d4 = kD4, d5 = kD5, d6 = kD6;
    write_table("mimic-cxr-2.0.0-metadata",
                "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,"
                "StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,"
                "PatientOrientationCodeSequence_CodeMeaning\n" +
                    d1 + ",10000032,50414267,CHEST (PA AND LAT),PA,3056,2544,21800506,213014.531,CHEST (PA AND LAT),postero-anterior,Erect\n" +
                    d2 + ",10000032,50414267,CHEST (PA AND LAT),LATERAL,3056,2544,21800506,213014.531,CHEST (PA AND LAT),lateral,Erect\n" +
                    d3 + ",10000032,53189527,CHEST (PORTABLE AP),AP,3056,2544,21800626,165500.312,CHEST (PORTABLE AP),antero-posterior,\n" +
                    d4 + ",10000764,57375967,CHEST (PORTABLE AP),AP,2705,2539,21321015,21512.937,CHEST (PORTABLE AP),antero-posterior,Erect\n" +
                    d5 + ",10000898,50771383,CHEST (PA AND LAT),PA,3056,2544,21320621,143112.593,CHEST (PA AND LAT),postero-anterior,Erect\n" +
                    d6 + ",10001176,53186264,CHEST (PA AND LAT),PA,3056,2544,21861126,103218.796,CHEST (PA AND LAT),postero-anterior,Erect\n");
    // Findings after study_id: Atelectasis, Cardiomegaly, Consolidation, Edema, Enlarged
    // Cardiomediastinum, Fracture, Lung Lesion, Lung Opacity, No Finding, Pleural Effusion (10th),
    // Pleural Other, Pneumonia, Pneumothorax, Support Devices.
    write_table("mimic-cxr-2.0.0-chexpert",
                "subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,"
                "Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices\n"
                "10000032,50414267,,,,,,,,,1.0,0.0,,,,\n"
                "10000032,53189527,,,,1.0,,,,,,1.0,,,,\n"
                "10000898,50771383,,,,,,,,,,1.0,,,,\n"
                "10001176,53186264,,,,,,,,,,-1.0,,,,\n");
    write_table("mimic-cxr-2.0.0-split",
                "dicom_id,study_id,subject_id,split\n" + d1 + ",50414267,10000032,train\n" + d2 +
                    ",50414267,10000032,train\n" + d3 + ",53189527,10000032,train\n" + d4 + ",57375967,10000764,validate\n" +
                    d5 + ",50771383,10000898,test\n" + d6 + ",53186264,10001176,train\n");
    const std::string patients =
        "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod\n"
        "10000032,F,52,2180,2014 - 2016,2180-09-09\n"
        "10000764,M,86,2132,2014 - 2016,\n"
        "10001176,F,64,2186,2008 - 2010,\n";
    if (fs::path(patients_rel).extension() == ".gz") write_gzip(patients_rel, patients);
    else write_text(patients_rel, patients);
    write_image("mimic/files/p10/p10000032/s50414267/" + d1 + ".jpg");
    write_image("mimic/files/p10/p10000032/s50414267/" + d2 + ".jpg");
    write_image("mimic/files/p10/p10000032/s53189527/" + d3 + ".jpg");
    write_image("mimic/files/p10/p10000764/s57375967/" + d4 + ".jpg");
    write_image("mimic/files/p10/p10000898/s50771383/" + d5 + ".jpg");
    write_image("mimic/files/p10/p10001176/s53186264/" + d6 + ".jpg");
  }
  dd::ImportOptions options() const {
    dd::ImportOptions o;
    o.format = dd::DatasetFormat::kMimicCxr;
    o.root = path("mimic");
    o.task = "Pleural Effusion";
    o.out = path("mimic/manifest.csv");
    return o;
  }
  static std::string image(const std::string& subject, const std::string& study, const std::string& dicom) {
    return "files/p10/p" + subject + "/s" + study + "/" + dicom + ".jpg";
  }
};

TEST_F(ImportMimic, GzipTablesPatientsJoinAndOfficialSplit) {
  write_small(true);
  auto o = options();
  o.split = dd::SplitMethod::kOfficial;
  const auto summary = dd::run_import(o);
  // D2 lateral, D5 unknown sex (no patients row), D6 uncertain: dropped; D4 has no chexpert row:
  // blank -> 0.
  const Table expected = {
      {image("10000032", "50414267", kD1), "train", "1", "0", "10000032", "52", "PA"},
      {image("10000032", "53189527", kD3), "train", "1", "1", "10000032", "52", "AP"},
      {image("10000764", "57375967", kD4), "val", "0", "0", "10000764", "86", "AP"},
  };
  EXPECT_EQ(manifest_rows("mimic/manifest.csv", kHeader), expected);
  const std::vector<std::pair<std::string, std::int64_t>> dropped = {
      {"view not PA/AP", 1}, {"uncertain label", 1}, {"unknown sex", 1}};
  EXPECT_EQ(summary.dropped, dropped);
  EXPECT_EQ(summary.tables_read.size(), 4u);  // metadata, chexpert, patients, split
}

TEST_F(ImportMimic, PlainTablesExplicitPatientsAndColumnRule) {
  write_small(false, "elsewhere/patients.csv");
  auto o = options();
  o.patients_file = path("elsewhere/patients.csv");
  o.val_fraction = 0.0;
  o.test_fraction = 0.0;  // every patient in train
  o.views = dd::ViewSelection::kAll;
  o.uncertain = dd::UncertainLabels::kOne;
  o.blank = dd::BlankLabels::kDrop;
  o.sa = dd::parse_sensitive_attribute("column:ViewPosition=AP");
  dd::run_import(o);
  // D4 (blank) dropped; D5 kept with unknown sex and age (sa is not sex); D6's -1.0 -> 1.
  const Table expected = {
      {image("10000032", "50414267", kD1), "train", "1", "0", "10000032", "52", "PA", "0"},
      {image("10000032", "50414267", kD2), "train", "1", "0", "10000032", "52", "LATERAL", "0"},
      {image("10000032", "53189527", kD3), "train", "1", "1", "10000032", "52", "AP", "1"},
      {image("10000898", "50771383", kD5), "train", "", "1", "10000898", "", "PA", "0"},
      {image("10001176", "53186264", kD6), "train", "1", "1", "10001176", "64", "PA", "0"},
  };
  EXPECT_EQ(manifest_rows("mimic/manifest.csv", kHeaderWithSa), expected);
  // A column of the patients table works too.
  o.sa = dd::parse_sensitive_attribute("column:anchor_year_group=2014 - 2016");
  dd::run_import(o);
  EXPECT_EQ(manifest_column("mimic/manifest.csv", "sa"), (std::vector<std::string>{"1", "1", "1", "0", "0"}));
}

TEST_F(ImportMimic, PatientsTableRequiredAndOptionsChecked) {
  write_small(true, "not-searched/patients.csv.gz");
  fs::rename(path("not-searched"), dir_ / "outside");
  auto o = options();
  expect_error<dne::DataError>([&] { dd::run_import(o); }, {"patients.csv", "--patients"});
  o.patients_file = path("outside/missing.csv");
  expect_error<dne::ConfigError>([&] { dd::run_import(o); }, {"--patients", "missing.csv"});
  o.patients_file = path("outside/patients.csv.gz");
  o.split = dd::SplitMethod::kOfficial;
  o.val_fraction = 0.1;
  expect_error<dne::ConfigError>([&] { dd::run_import(o); }, {"--val-fraction", "validate"});
  o.val_fraction.reset();
  o.task = "Effusion";
  expect_error<dne::ConfigError>([&] { dd::run_import(o); }, {"--task 'Effusion'", "Atelectasis", "Pleural Effusion"});
  o.task = "Pleural Effusion";
  fs::remove(path("mimic/mimic-cxr-2.0.0-split.csv.gz"));
  expect_error<dne::DataError>([&] { dd::run_import(o); }, {"mimic-cxr-2.0.0-split.csv.gz", "not found"});
  EXPECT_FALSE(fs::exists(path("mimic/manifest.csv")));
}

TEST_F(ImportMimic, MissingImageNamesTheMetadataLine) {
  write_small(true);
  fs::remove(path(std::string("mimic/files/p10/p10000764/s57375967/") + kD4 + ".jpg"));
  auto o = options();
  expect_error<dne::DataError>([&] { dd::run_import(o); },
                               {"mimic-cxr-2.0.0-metadata.csv.gz:5", "image not found", kD4});
}

// ------------------------------------------------------------------------------------------------
// NIH ChestX-ray14

class ImportNih : public ImportFixture {
 protected:
  /// Data_Entry_2017.csv as published (unquoted commas in the bracketed header names, a trailing
  /// comma on every line, an old-style age "069Y"), images spread over images_001/images,
  /// images_002/images and images/, and the official split lists.
  void write_small() {
    write_text("nih/Data_Entry_2017.csv",
               "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
               "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n"
               "00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143,\n"
               "00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA,2894,2729,0.143,0.143,\n"
               "00000002_000.png,No Finding,0,2,81,M,PA,2500,2048,0.171,0.171,\n"
               "00000003_000.png,Hernia|Effusion,0,3,81,F,PA,2582,2991,0.143,0.143,\n"
               "00000003_001.png,Effusion,1,3,74,F,AP,2500,2048,0.168,0.168,\n"
               "00000004_000.png,Mass|Nodule,0,4,82,M,AP,2500,2048,0.168,0.168,\n"
               "00000005_000.png,Pleural_Thickening|Effusion|Infiltration,0,5,069Y,F,PA,2048,2500,0.168,0.168,\n");
    write_text("nih/train_val_list.txt", "00000001_000.png\n00000001_001.png\n00000002_000.png\n00000004_000.png\n00000005_000.png\n");
    write_text("nih/test_list.txt", "00000003_000.png\r\n00000003_001.png\r\n");
    for (const char* name : {"00000001_000.png", "00000001_001.png", "00000002_000.png"}) write_image(std::string("nih/images_001/images/") + name);
    for (const char* name : {"00000003_000.png", "00000003_001.png", "00000004_000.png"}) write_image(std::string("nih/images_002/images/") + name);
    write_image("nih/images/00000005_000.png");
  }
  dd::ImportOptions options() const {
    dd::ImportOptions o;
    o.format = dd::DatasetFormat::kNih;
    o.root = path("nih");
    o.task = "Effusion";
    o.out = path("nih/manifest.csv");
    return o;
  }
};

TEST_F(ImportNih, PipeSeparatedFindingsTrailingCommaAndOfficialSplit) {
  write_small();
  auto o = options();
  o.split = dd::SplitMethod::kOfficial;
  o.val_fraction = 0.0;
  const auto summary = dd::run_import(o);
  const Table expected = {
      {"images_001/images/00000001_000.png", "train", "0", "0", "1", "58", "PA"},
      {"images_001/images/00000001_001.png", "train", "0", "0", "1", "58", "PA"},
      {"images_001/images/00000002_000.png", "train", "0", "0", "2", "81", "PA"},
      {"images_002/images/00000003_000.png", "test", "1", "1", "3", "81", "PA"},
      {"images_002/images/00000003_001.png", "test", "1", "1", "3", "74", "AP"},
      {"images_002/images/00000004_000.png", "train", "0", "0", "4", "82", "AP"},
      {"images/00000005_000.png", "train", "1", "1", "5", "69", "PA"},
  };
  EXPECT_EQ(manifest_rows("nih/manifest.csv", kHeader), expected);
  EXPECT_TRUE(summary.dropped.empty());
  EXPECT_EQ(summary.positives, (std::array<std::int64_t, 3>{1, 0, 2}));

  // "Pleural Effusion" is an alias of Effusion; other findings by name, "No Finding" too.
  o.task = "Pleural Effusion";
  dd::run_import(o);
  EXPECT_EQ(manifest_rows("nih/manifest.csv", kHeader), expected);
  o.task = "Emphysema";
  dd::run_import(o);
  EXPECT_EQ(manifest_column("nih/manifest.csv", "label"), (std::vector<std::string>{"0", "1", "0", "0", "0", "0", "0"}));
  o.task = "No Finding";
  dd::run_import(o);
  EXPECT_EQ(manifest_column("nih/manifest.csv", "label"), (std::vector<std::string>{"0", "0", "1", "0", "0", "0", "0"}));
  o.task = "Pleural_Thickening";
  dd::run_import(o);
  EXPECT_EQ(manifest_column("nih/manifest.csv", "label"), (std::vector<std::string>{"0", "0", "0", "0", "0", "0", "1"}));
}

TEST_F(ImportNih, V2020TableWithoutTrailingCommaAndAgeRule) {
  write_small();
  fs::remove(path("nih/Data_Entry_2017.csv"));
  write_text("nih/Data_Entry_2017_v2020.csv",
             "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
             "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]\n"
             "00000001_000.png,Cardiomegaly,0,1,57,M,PA,2682,2749,0.143,0.143\n"
             "00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA,2894,2729,0.143,0.143\n"
             "00000002_000.png,No Finding,0,2,80,M,PA,2500,2048,0.171,0.171\n"
             "00000003_000.png,Hernia,0,3,74,F,PA,2582,2991,0.143,0.143\n"
             "00000003_001.png,Hernia|Pleural_Thickening,1,3,75,F,AP,2500,2048,0.168,0.168\n"
             "00000004_000.png,Mass|Nodule,0,4,81,M,AP,2500,2048,0.168,0.168\n"
             "00000005_000.png,Effusion,0,5,69,F,PA,2048,2500,0.168,0.168\n");
  auto o = options();
  o.split = dd::SplitMethod::kOfficial;
  o.val_fraction = 0.0;
  o.sa = dd::parse_sensitive_attribute("age:75");
  dd::run_import(o);
  EXPECT_EQ(manifest_column("nih/manifest.csv", "age"), (std::vector<std::string>{"57", "58", "80", "74", "75", "81", "69"}));
  EXPECT_EQ(manifest_column("nih/manifest.csv", "sa"), (std::vector<std::string>{"0", "0", "1", "0", "1", "1", "0"}));
  EXPECT_EQ(manifest_column("nih/manifest.csv", "label"), (std::vector<std::string>{"0", "0", "0", "0", "0", "0", "1"}));
  o.sa = dd::parse_sensitive_attribute("column:View Position=AP");
  dd::run_import(o);
  EXPECT_EQ(manifest_column("nih/manifest.csv", "sa"), (std::vector<std::string>{"0", "0", "0", "0", "1", "1", "0"}));
}

TEST_F(ImportNih, OfficialSplitCarvesValidationByPatient) {
  write_small();
  auto o = options();
  o.split = dd::SplitMethod::kOfficial;
  o.val_fraction = 0.5;  // train_val_list holds patients 1, 2, 4, 5: round(0.5 * 4) = 2 go to val
  dd::run_import(o);
  const auto patients = manifest_column("nih/manifest.csv", "patient");
  const auto splits = manifest_column("nih/manifest.csv", "split");
  std::map<std::string, std::set<std::string>> by_patient;
  for (std::size_t i = 0; i < patients.size(); ++i) by_patient[patients[i]].insert(splits[i]);
  EXPECT_EQ(by_patient.at("3"), (std::set<std::string>{"test"}));
  int val = 0;
  for (const char* p : {"1", "2", "4", "5"}) {
    ASSERT_EQ(by_patient.at(p).size(), 1u) << p;
    val += by_patient.at(p).count("val") ? 1 : 0;
  }
  EXPECT_EQ(val, 2);
}

TEST_F(ImportNih, MissingImageAndUnknownTask) {
  write_small();
  fs::remove(path("nih/images_002/images/00000004_000.png"));
  auto o = options();
  expect_error<dne::DataError>([&] { dd::run_import(o); }, {"Data_Entry_2017.csv:7", "image not found", "00000004_000.png"});
  EXPECT_FALSE(fs::exists(path("nih/manifest.csv")));
  o.skip_missing = true;
  const auto summary = dd::run_import(o);
  const std::vector<std::pair<std::string, std::int64_t>> dropped = {{"missing image", 1}};
  EXPECT_EQ(summary.dropped, dropped);

  o.task = "Fracture";
  expect_error<dne::ConfigError>([&] { dd::run_import(o); },
                                 {"--task 'Fracture'", "Effusion", "Hernia", "No Finding", "Pleural Effusion (= Effusion)"});
  o.task = "Effusion";
  o.split = dd::SplitMethod::kOfficial;
  fs::remove(path("nih/test_list.txt"));
  expect_error<dne::DataError>([&] { dd::run_import(o); }, {"test_list.txt", "not found"});
}

// ------------------------------------------------------------------------------------------------
// Option parsing

TEST(ImportOptionParsing, ChoicesAndSensitiveAttributeRules) {
  EXPECT_EQ(dd::parse_dataset_format("mimic-cxr"), dd::DatasetFormat::kMimicCxr);
  EXPECT_EQ(dd::parse_uncertain_labels("one"), dd::UncertainLabels::kOne);
  EXPECT_EQ(dd::parse_blank_labels("drop"), dd::BlankLabels::kDrop);
  EXPECT_EQ(dd::parse_view_selection("all"), dd::ViewSelection::kAll);
  EXPECT_EQ(dd::parse_split_method("official"), dd::SplitMethod::kOfficial);
  expect_error<dne::ConfigError>([] { dd::parse_dataset_format("padchest"); }, {"--format 'padchest'", "chexpert", "mimic-cxr", "nih"});
  expect_error<dne::ConfigError>([] { dd::parse_uncertain_labels("half"); }, {"--uncertain 'half'"});
  expect_error<dne::ConfigError>([] { dd::parse_blank_labels("one"); }, {"--blank 'one'"});
  expect_error<dne::ConfigError>([] { dd::parse_view_selection("pa"); }, {"--views 'pa'"});
  expect_error<dne::ConfigError>([] { dd::parse_split_method("random"); }, {"--split 'random'"});

  EXPECT_EQ(dd::parse_sensitive_attribute("sex").kind, dd::SensitiveAttribute::Kind::kSex);
  const auto age = dd::parse_sensitive_attribute("age:60");
  EXPECT_EQ(age.kind, dd::SensitiveAttribute::Kind::kAgeAtLeast);
  EXPECT_EQ(age.age_threshold, 60.0);
  const auto column = dd::parse_sensitive_attribute("column:anchor_year_group=2017 - 2019");
  EXPECT_EQ(column.kind, dd::SensitiveAttribute::Kind::kColumnEquals);
  EXPECT_EQ(column.column, "anchor_year_group");
  EXPECT_EQ(column.value, "2017 - 2019");
  EXPECT_EQ(dd::parse_sensitive_attribute("column:Sex=").value, "");
  for (const char* bad : {"age:", "age:old", "age:-3", "column:", "column:=F", "column:Sex", "race"})
    expect_error<dne::ConfigError>([&] { dd::parse_sensitive_attribute(bad); }, {"--sa '" + std::string(bad) + "'"});
}

}  // namespace

// A gzip table cut short (an interrupted download) is an error, never a shorter table.
TEST_F(ImportMimic, TruncatedGzipTableIsAnError) {
  std::string text = "subject_id,study_id,Edema\n";
  for (int i = 0; i < 20000; ++i) text += std::to_string(10000000 + i) + "," + std::to_string(50000000 + i) + ",1.0\n";
  write_gzip("whole.csv.gz", text);
  EXPECT_EQ(dne::data::read_csv(path("whole.csv.gz")).rows.size(), 20000u);
  std::ifstream in(path("whole.csv.gz"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(path("cut.csv.gz"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  try {
    dne::data::read_csv(path("cut.csv.gz"));
    FAIL() << "a truncated gzip file was read";
  } catch (const dne::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("cut.csv.gz: truncated or corrupt gzip file"), std::string::npos) << e.what();
  }
}

// The content hash of a table is FNV-1a-64 of the bytes parsed: the published test vector for
// "foobar", whether the file is plain or gzip-compressed.
TEST_F(ImportMimic, TableContentHashIsOfTheBytesParsed) {
  write_text("t.csv", "foobar");
  write_gzip("t.csv.gz", "foobar");
  EXPECT_EQ(dne::data::read_csv(path("t.csv")).content_hash, "85944171f73967e8");
  EXPECT_EQ(dne::data::read_csv(path("t.csv.gz")).content_hash, "85944171f73967e8");
}

// ------------------------------------------------------------------------------------------------
// Hostile or broken tables (issue 25): the importers keep their promise that a patient lives in
// one split, and never reach outside --root.

TEST_F(ImportChexpert, APatientInTrainAndValidIsAnErrorNamingBothRows) {
  write_small();
  // patient00004 also appears in valid.csv (line 5): official split would put them in train and test.
  std::ofstream(path("CheXpert-v1.0-small/valid.csv"), std::ios::app)
      << "CheXpert-v1.0-small/train/patient00004/study1/view1_frontal.jpg,Female,41,Frontal,AP,0.0,0.0,0.0,0.0,0.0,0.0,"
         "0.0,0.0,0.0,0.0,1.0,0.0,0.0,0.0\n";
  auto o = options();
  o.split = dd::SplitMethod::kOfficial;
  o.val_fraction = 0.0;
  expect_error<dne::DataError>([&] { dd::run_import(o); },
                               {"patient patient00004 is in train (", "train.csv:7", "and in test (", "valid.csv:5"});
  EXPECT_FALSE(fs::exists(path("out/manifest.csv")));
  o.split = dd::SplitMethod::kPatient;  // the patient split keeps them together
  EXPECT_NO_THROW(dd::run_import(o));
}

TEST_F(ImportChexpert, PathsLeavingTheRootAreRefused) {
  for (const std::string bad : {"CheXpert-v1.0-small/../secret/patient00009/study1/view1_frontal.jpg",
                                "/etc/patient00009/study1/view1_frontal.jpg"}) {
    write_small();
    std::ofstream(path("CheXpert-v1.0-small/train.csv"), std::ios::app)
        << bad << ",Female,41,Frontal,AP,,,,,,1.0,,,,,0.0,,,\n";
    auto o = options();
    expect_error<dne::DataError>([&] { dd::run_import(o); }, {"train.csv:8", "Path '" + bad + "'", "under --root"});
  }
  // A symlink inside the dataset that points outside it.
  write_small();
  write_image("elsewhere/view1_frontal.jpg");
  const auto link = path("CheXpert-v1.0-small/train/patient00004/study1/view1_frontal.jpg");
  fs::remove(link);
  fs::create_symlink(path("elsewhere/view1_frontal.jpg"), link);
  expect_error<dne::DataError>([&] { dd::run_import(options()); },
                               {"train.csv:7", "resolves to", "elsewhere/view1_frontal.jpg", "outside --root"});
}

TEST_F(ImportChexpert, AnAgeNoPatientHasIsUnknownAndCounted) {
  // Before: 1e300 became -9223372036854775808. NIH's real table has ages up to 414 (data errors),
  // so an implausible age is unknown (blank) and counted, not an error.
  write_small();
  std::ofstream(path("CheXpert-v1.0-small/train.csv"), std::ios::app)
      << "CheXpert-v1.0-small/train/patient00005/study1/view1_frontal.jpg,Female,1e300,Frontal,AP,,,,,,1.0,,,,,0.0,,,\n"
      << "CheXpert-v1.0-small/train/patient00006/study1/view1_frontal.jpg,Male,151,Frontal,AP,,,,,,1.0,,,,,0.0,,,\n"
      << "CheXpert-v1.0-small/train/patient00007/study1/view1_frontal.jpg,Male,150,Frontal,AP,,,,,,1.0,,,,,0.0,,,\n";
  for (const char* image : {"patient00005", "patient00006", "patient00007"})
    write_image(std::string("CheXpert-v1.0-small/train/") + image + "/study1/view1_frontal.jpg");
  auto o = options();
  o.split = dd::SplitMethod::kOfficial;
  o.val_fraction = 0.0;
  const auto summary = dd::run_import(o);
  EXPECT_EQ(summary.implausible_age, 2);
  const auto ages = manifest_column("out/manifest.csv", "age");
  const auto patients = manifest_column("out/manifest.csv", "patient");
  std::map<std::string, std::string> age_of;
  for (std::size_t i = 0; i < ages.size(); ++i) age_of[patients[i]] = ages[i];
  EXPECT_EQ(age_of.at("patient00005"), "");
  EXPECT_EQ(age_of.at("patient00006"), "");
  EXPECT_EQ(age_of.at("patient00007"), "150");
  EXPECT_NE(dd::describe_import(summary, o.out).find("2 rows with an age above 150 years"), std::string::npos);
}

TEST_F(ImportNih, AnImageInBothListsOrTwoFilesOfOneNameAreErrors) {
  write_small();
  write_text("nih/test_list.txt", "00000003_000.png\n00000003_001.png\n00000004_000.png\n");
  auto o = options();
  o.split = dd::SplitMethod::kOfficial;
  expect_error<dne::DataError>([&] { dd::run_import(o); },
                               {"test_list.txt: 1 image(s) also in", "train_val_list.txt", "00000004_000.png"});
  write_small();
  write_text("nih/test_list.txt", "00000003_000.png\n00000003_001.png\n");
  write_image("nih/planted/00000002_000.png");
  expect_error<dne::DataError>([&] { dd::run_import(o); },
                               {"Data_Entry_2017.csv:4", "2 files named 00000002_000.png", "images_001/images/00000002_000.png",
                                "planted/00000002_000.png", "ambiguous"});
}

TEST_F(ImportNih, APatientInBothListsIsAnError) {
  write_small();
  // Patient 3's second image moves to the training list: patient 3 would be trained and tested on.
  write_text("nih/train_val_list.txt",
             "00000001_000.png\n00000001_001.png\n00000002_000.png\n00000003_001.png\n00000004_000.png\n00000005_000.png\n");
  write_text("nih/test_list.txt", "00000003_000.png\n");
  auto o = options();
  o.split = dd::SplitMethod::kOfficial;
  o.val_fraction = 0.0;
  expect_error<dne::DataError>([&] { dd::run_import(o); },
                               {"patient 3 is in test (", "Data_Entry_2017.csv:5) and in train (", "Data_Entry_2017.csv:6)"});
}

TEST_F(ImportMimic, ConflictingPatientRowsAreAnError) {
  write_small(false, "mimic/patients.csv");
  std::ofstream(path("mimic/patients.csv"), std::ios::app) << "10000764,M,86,2132,2014 - 2016,\n";  // a repeat: fine
  auto o = options();
  EXPECT_NO_THROW(dd::run_import(o));
  std::ofstream(path("mimic/patients.csv"), std::ios::app) << "10000032,M,52,2180,2014 - 2016,\n";
  expect_error<dne::DataError>([&] { dd::run_import(o); },
                               {"patients.csv:6", "subject_id 10000032 has gender 'M'", "patients.csv:2", "'F'", "conflicting"});
}
