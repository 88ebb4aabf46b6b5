// CSV fields and tables from hand-written lines (quotes, commas, embedded quotes, a BOM, CRLF,
// a gzip copy; the content hash re-computed here with FNV-1a-64), atomic writes, the image
// cache's layout text and its pixels read back with the HDF5 C API (quantized values computed
// by hand), the sample width from hand-written image headers, the importers' manifest writer,
// manifest rows split and decoded, and the phantom's option checks.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/data/csv.hpp"
#include "dne/data/dataset.hpp"
#include "dne/data/image_cache.hpp"
#include "dne/data/image_io.hpp"
#include "dne/data/importers.hpp"
#include "dne/data/manifest.hpp"
#include "dne/data/phantom.hpp"
#include "test_support.hpp"

namespace dd = dne::data;
namespace fs = std::filesystem;

namespace {

using dne_test::expect_error;

class CsvFiles : public dne_test::TempDirTest {
 protected:
  std::string read(const std::string& rel) const {
    std::ifstream in(dir_ / rel, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  /// Names of the folder's entries.
  std::set<std::string> entries() const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.insert(e.path().filename().string());
    return names;
  }
};

/// FNV-1a-64 as published (offset basis 0xcbf29ce484222325, prime 0x100000001b3), 16 hex digits.
std::string fnv1a64_hex(const std::string& bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

TEST(Csv, SplitCsvLineHandlesQuotesCommasAndTrimming) {
  using V = std::vector<std::string>;
  EXPECT_EQ(dd::split_csv_line("a,b,c", "f:1"), (V{"a", "b", "c"}));
  EXPECT_EQ(dd::split_csv_line(" a , b ,c ", "f:1"), (V{"a", "b", "c"}));  // unquoted fields trimmed
  EXPECT_EQ(dd::split_csv_line("\"x, y\",2", "f:1"), (V{"x, y", "2"}));   // a comma inside quotes is text
  EXPECT_EQ(dd::split_csv_line("\"say \"\"hi\"\"\",3", "f:1"), (V{"say \"hi\"", "3"}));  // "" is a quote
  EXPECT_EQ(dd::split_csv_line("\" padded \",z", "f:1"), (V{" padded ", "z"}));  // quoted: kept as is
  EXPECT_EQ(dd::split_csv_line("", "f:1"), (V{""}));
  EXPECT_EQ(dd::split_csv_line("a,,", "f:1"), (V{"a", "", ""}));
  EXPECT_EQ(dd::split_csv_line("\"\",b", "f:1"), (V{"", "b"}));
  EXPECT_EQ(dd::split_csv_line("\"x\" ,y", "f:1"), (V{"x", "y"}));  // blanks after a closing quote dropped
  expect_error<dne::DataError>([] { dd::split_csv_line("a,\"x\"y,z", "manifest.csv:4"); },
                               {"manifest.csv:4", "text after the closing quote of field 2"});
  expect_error<dne::DataError>([] { dd::split_csv_line("a,\"open, never closed", "manifest.csv:7"); },
                               {"manifest.csv:7", "unterminated quoted field"});
}

TEST(Csv, QuoteCsvQuotesOnlyWhenNeededAndRoundTrips) {
  EXPECT_EQ(dd::quote_csv("plain"), "plain");
  EXPECT_EQ(dd::quote_csv(""), "");
  EXPECT_EQ(dd::quote_csv("a,b"), "\"a,b\"");
  EXPECT_EQ(dd::quote_csv("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(dd::quote_csv(" lead"), "\" lead\"");
  EXPECT_EQ(dd::quote_csv("trail\t"), "\"trail\t\"");
  EXPECT_EQ(dd::quote_csv("in side"), "in side");  // inner whitespace needs no quotes
  const std::vector<std::string> fields = {"images/p 1.png", "x,y", "\"q\"", " s ", "", "AP"};
  std::string line;
  for (std::size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + dd::quote_csv(fields[i]);
  EXPECT_EQ(dd::split_csv_line(line, "round trip"), fields);
}

TEST_F(CsvFiles, CsvTableReadsRowsWithLinesAndTheHashOfItsBytes) {
  const std::string text =
      "\xEF\xBB\xBFpath,split,sex,label\r\n"
      "a.png,train,F,1\r\n"
      "\r\n"
      "\"b, c.png\",test,M,0\r\n"
      " \"d \"\"e\"\".png\", val , F , 0\r\n";
  write_text("m.csv", text);
  const dd::CsvTable t = dd::read_csv(path("m.csv"), {"path", "label"});
  EXPECT_EQ(t.path, path("m.csv"));
  EXPECT_EQ(t.content_hash, fnv1a64_hex(text));
  EXPECT_EQ(t.header, (std::vector<std::string>{"path", "split", "sex", "label"}));  // BOM gone
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0].line, 2);
  EXPECT_EQ(t.rows[1].line, 4);  // the blank line 3 is skipped, not renumbered
  EXPECT_EQ(t.rows[2].line, 5);
  EXPECT_EQ(t.rows[1].fields[0], "b, c.png");
  EXPECT_EQ(t.rows[2].fields, (std::vector<std::string>{"d \"e\".png", "val", "F", "0"}));
  EXPECT_EQ(t.column("sex"), 2);
  EXPECT_EQ(t.column("Sex"), -1);  // exact match only
  EXPECT_EQ(t.require("label"), 3);
  EXPECT_EQ(t.where(t.rows[1]), path("m.csv") + ":4");
  expect_error<dne::DataError>([&] { t.require("age"); }, {path("m.csv"), "no column 'age'", "path,split,sex,label"});
  // A required column missing from the header, and a short row, name their lines.
  expect_error<dne::DataError>([&] { dd::read_csv(path("m.csv"), {"patient"}); }, {path("m.csv") + ":1", "patient"});
  write_text("short.csv", "a,b,c\n1,2,3\n4,5\n");
  expect_error<dne::DataError>([&] { dd::read_csv(path("short.csv")); }, {path("short.csv") + ":3", "expected 3 fields, got 2"});
}

TEST_F(CsvFiles, CsvTableReadsGzipAndHashesTheUncompressedBytes) {
  const std::string text = "id,finding\n1,Effusion\n2,\"No Finding\"\n";
  gzFile gz = gzopen(path("t.csv.gz").c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
  ASSERT_EQ(gzclose(gz), Z_OK);
  const dd::CsvTable t = dd::read_csv(path("t.csv.gz"));
  EXPECT_EQ(t.content_hash, fnv1a64_hex(text));
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[1].fields, (std::vector<std::string>{"2", "No Finding"}));
}

TEST_F(CsvFiles, WriteFileAtomicallyReplacesTheWholeFileAndLeavesNoTemporary) {
  dd::write_file_atomically(path("out.csv"), "first\n", "test write");
  EXPECT_EQ(read("out.csv"), "first\n");
  dd::write_file_atomically(path("out.csv"), "a much longer second text\nover two lines\n", "test write");
  EXPECT_EQ(read("out.csv"), "a much longer second text\nover two lines\n");
  dd::write_file_atomically(path("out.csv"), "", "test write");
  EXPECT_EQ(read("out.csv"), "");
  EXPECT_EQ(entries(), (std::set<std::string>{"out.csv"}));
  // A folder that does not exist: StoreError naming `what`, nothing left behind.
  expect_error<dne::StoreError>([&] { dd::write_file_atomically(path("missing/out.csv"), "x", "--out 'missing/out.csv'"); },
                                {"--out 'missing/out.csv'", "cannot write"});
  // A target that is a non-empty folder cannot be replaced by a rename: the temporary is removed.
  write_text("taken/inside.txt", "keep");
  expect_error<dne::StoreError>([&] { dd::write_file_atomically(path("taken"), "x", "the manifest"); },
                                {"the manifest", "cannot rename"});
  EXPECT_EQ(entries(), (std::set<std::string>{"out.csv", "taken"}));
  EXPECT_EQ(read("taken/inside.txt"), "keep");
}

TEST(ImageCacheLayout, TextRoundTripKeepsAPathWithSpacesAndMalformedTextIsRefused) {
  dd::ImageCacheLayout l;
  l.temp_path = "/runs/my run/cache/images-0123.h5.tmp.host.42";
  l.bits = 16;
  l.image_size = 64;
  l.offset = {2048, 0, 4096 + 64 * 64 * 2 * 5};
  l.rows = {5, 0, 3};
  const std::string text = l.to_text();
  EXPECT_EQ(text.find('\n'), std::string::npos);  // one line
  const dd::ImageCacheLayout back = dd::ImageCacheLayout::from_text(text);
  EXPECT_EQ(back.temp_path, l.temp_path);
  EXPECT_EQ(back.bits, 16);
  EXPECT_EQ(back.image_size, 64);
  EXPECT_EQ(back.offset, l.offset);
  EXPECT_EQ(back.rows, l.rows);
  for (const std::string bad : {"", "8", "garbage", "12 64 0 1 0 0 0 0 /p",  // 12 bits
                                "8 0 0 1 0 0 0 0 /p",                         // no image size
                                "8 64 0 1 0 0 0 0"})                          // no path
    EXPECT_THROW(dd::ImageCacheLayout::from_text(bad), dne::StoreError) << "'" << bad << "'";
}

/// A dataset of `n` (train), 0 (val) and 1 (test) images of side s, labels and sources set.
dd::Dataset cache_tables(int n, std::int64_t s) {
  dd::Dataset ds;
  for (dd::ImageSet* set : {&ds.train, &ds.test}) {
    const int count = set == &ds.train ? n : 1;
    set->height = set->width = s;
    for (int i = 0; i < count; ++i) {
      set->label.push_back(i % 2);
      set->sa.push_back(1 - i % 2);
      set->source.push_back((set == &ds.train ? "tr" : "te") + std::to_string(i));
    }
  }
  return ds;
}

/// A whole dataset `name` of an HDF5 file, read with the C API as unsigned 16-bit values.
std::vector<std::uint16_t> h5_read_u16(const std::string& file, const std::string& name) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
  const hid_t space = H5Dget_space(d);
  std::vector<std::uint16_t> values(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
  if (!values.empty()) H5Dread(d, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(f);
  return values;
}

TEST_F(CsvFiles, ImageCacheFileAndPixelsWriteQuantizedSamplesWhereTheLayoutSays) {
  for (const int bits : {8, 16}) {
    const std::int64_t s = 2;
    const std::string final_path = path("cache/images-" + std::to_string(bits) + ".h5");
    const dd::Dataset ds = cache_tables(3, s);
    dd::ImageCacheFile file(final_path, ds, "hash1", s, "stretch", bits);
    const dd::ImageCacheLayout layout = file.layout();
    EXPECT_EQ(layout.bits, bits);
    EXPECT_EQ(layout.image_size, s);
    EXPECT_EQ(layout.rows, (std::array<std::int64_t, 3>{3, 0, 1}));
    EXPECT_TRUE(fs::exists(layout.temp_path));
    EXPECT_FALSE(fs::exists(final_path));
    {
      // Another process would get the layout as text.
      dd::ImageCachePixels pixels(dd::ImageCacheLayout::from_text(layout.to_text()));
      const float a[4] = {0.0f, 1.0f, 0.5f, 0.25f}, b[4] = {2.0f, -1.0f, 0.1f, 0.999f}, c[4] = {0.2f, 0.4f, 0.6f, 0.8f};
      pixels.write(dd::Split::kTrain, 2, b);  // any order
      pixels.write(dd::Split::kTrain, 0, a);
      pixels.write(dd::Split::kTrain, 1, c);
      pixels.write(dd::Split::kTest, 0, c);
      EXPECT_THROW(pixels.write(dd::Split::kTrain, 3, a), dne::StoreError);  // outside train's 3 rows
      EXPECT_THROW(pixels.write(dd::Split::kVal, 0, a), dne::StoreError);    // val has none
      pixels.close();
    }
    file.commit();
    EXPECT_TRUE(fs::exists(final_path));
    EXPECT_FALSE(fs::exists(layout.temp_path));
    // q = round(clamp(v, 0, 1) * M), halves up, by hand: M = 255 or 65535.
    std::vector<std::uint16_t> expected;
    if (bits == 8)
      expected = {0, 255, 128, 64, /**/ 51, 102, 153, 204, /**/ 255, 0, 26, 255};
    else
      expected = {0, 65535, 32768, 16384, /**/ 13107, 26214, 39321, 52428, /**/ 65535, 0, 6554, 65469};
    EXPECT_EQ(h5_read_u16(final_path, "/train/pixels"), expected) << bits << " bits";
    EXPECT_EQ(h5_read_u16(final_path, "/test/pixels"),
              (std::vector<std::uint16_t>(expected.begin() + 4, expected.begin() + 8)));
    // The offsets are HDF5's own for those datasets.
    const hid_t f = H5Fopen(final_path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, "/test/pixels", H5P_DEFAULT);
    EXPECT_EQ(H5Dget_offset(d), layout.offset[2]);
    H5Dclose(d);
    H5Fclose(f);
    // And the project's reader agrees: q / M.
    const dd::Dataset back = dd::read_image_cache(final_path, "hash1", s, "stretch");
    EXPECT_EQ(back.train.pixels[1], 1.0f);
    EXPECT_EQ(back.train.pixels[2], static_cast<float>(expected[2]) / static_cast<float>((1 << bits) - 1));
    EXPECT_EQ(back.test.source, (std::vector<std::string>{"te0"}));
    EXPECT_EQ(back.train.label, (std::vector<int>{0, 1, 0}));
  }
}

TEST_F(CsvFiles, ImageCacheFileDestroyedWithoutCommitLeavesNothing) {
  {
    dd::ImageCacheFile file(path("c/images.h5"), cache_tables(2, 4), "h", 4, "crop", 8);
    EXPECT_TRUE(fs::exists(file.layout().temp_path));
  }
  EXPECT_TRUE(fs::is_empty(path("c")));
  EXPECT_THROW(dd::ImageCachePixels(dd::ImageCacheLayout::from_text("8 4 0 1 0 0 0 0 " + path("c/none.tmp"))), dne::StoreError);
}

TEST_F(CsvFiles, ImageSampleBitsFromTheHeader) {
  std::vector<float> gradient(16 * 16);
  for (std::size_t i = 0; i < gradient.size(); ++i) gradient[i] = static_cast<float>(i) / 255.0f;
  dd::write_grayscale_png(path("eight.png"), gradient.data(), 16, 16);
  EXPECT_EQ(dd::image_sample_bits(path("eight.png")), 8);
  // Binary PGM (P5): a maximum value above 255 means two bytes per sample.
  write_text("sixteen.pgm", std::string("P5\n2 2\n65535\n") + std::string(8, '\x7f'));
  EXPECT_EQ(dd::image_sample_bits(path("sixteen.pgm")), 16);
  write_text("byte.pgm", std::string("P5\n2 2\n255\n") + std::string(4, '\x7f'));
  EXPECT_EQ(dd::image_sample_bits(path("byte.pgm")), 8);
  write_text("unknown.bin", "this is no image header at all");
  EXPECT_EQ(dd::image_sample_bits(path("unknown.bin")), 8);
  expect_error<dne::DataError>([&] { dd::image_sample_bits(path("missing.png")); }, {"missing.png"});
}

TEST_F(CsvFiles, WriteImportManifestWritesRelativePathsAndOptionalColumns) {
  write_text("data/img/p1 a.jpg", "x");
  dd::ImportResult result;
  dd::ManifestEntry e1;
  e1.image = path("data/img/p1 a.jpg");
  e1.split = "train";
  e1.sex = 1;
  e1.label = 1;
  e1.patient = "p1";
  e1.age = 63;
  e1.view = "PA";
  e1.sa = 1;
  dd::ManifestEntry e2;
  e2.image = path("elsewhere/q,2.png");
  e2.split = "test";
  e2.patient = "p \"2\"";
  e2.view = "AP";
  e2.sa = 0;  // sex unknown, no age
  result.entries = {e1, e2};
  result.summary.rows = {1, 0, 1};
  dd::write_import_manifest(result.entries, path("data/manifest.csv"), false);
  EXPECT_EQ(read("data/manifest.csv"),
            "path,split,sex,label,patient,age,view\n"
            "img/p1 a.jpg,train,1,1,p1,63,PA\n"
            "\"../elsewhere/q,2.png\",test,,0,\"p \"\"2\"\"\",,AP\n");
  dd::write_import_manifest(result.entries, path("data/with_sa.csv"), true);
  const dd::CsvTable t = dd::read_csv(path("data/with_sa.csv"));
  EXPECT_EQ(t.header.back(), "sa");
  EXPECT_EQ(t.rows[0].fields.back(), "1");
  EXPECT_EQ(t.rows[1].fields[4], "p \"2\"");
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(path("data"))) names.insert(e.path().filename().string());
  EXPECT_EQ(names, (std::set<std::string>{"img", "manifest.csv", "with_sa.csv"}));  // no temporary left
}

TEST(ImportSummary, DescribeImportCountsSplitsFemaleShareAndDrops) {
  dd::ImportSummary s;
  s.tables_read = {"train.csv", "valid.csv"};
  s.rows = {6, 1, 3};
  s.positives = {2, 0, 1};
  s.patients = {4, 1, 2};
  s.female = 3;
  s.known_sex = 8;
  s.dropped = {{"view not PA/AP", 5}, {"unknown sex", 2}};
  const std::string text = dd::describe_import(s, "m.csv");
  EXPECT_NE(text.find("wrote m.csv: 10 rows from train.csv, valid.csv\n"), std::string::npos) << text;
  EXPECT_NE(text.find("6 rows, 2 positive, 4 patients\n"), std::string::npos) << text;
  EXPECT_NE(text.find("female share: 0.375 (3 of 8 rows with known sex)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("dropped 7 rows: view not PA/AP 5, unknown sex 2\n"), std::string::npos) << text;
  s.known_sex = 0;
  EXPECT_NE(dd::describe_import(s, "m.csv").find("n/a"), std::string::npos);
}

/// A manifest of hand-made rows (no file behind it): splits in the order given.
dd::Manifest hand_manifest(const std::vector<dd::Split>& splits, const std::vector<std::string>& paths) {
  dd::Manifest m;
  m.csv_path = "hand.csv";
  for (std::size_t i = 0; i < splits.size(); ++i) {
    dd::ManifestRow r;
    r.line = static_cast<std::int64_t>(i) + 2;
    r.path = paths[i];
    r.split = splits[i];
    r.label = static_cast<int>(i % 2);
    r.sa = static_cast<int>((i / 2) % 2);
    m.rows.push_back(r);
  }
  m.rows_in_file = static_cast<std::int64_t>(m.rows.size());
  return m;
}

TEST(ManifestRows, SplitRowsPutsEachRowInItsSplitInFileOrder) {
  using S = dd::Split;
  const dd::Manifest m = hand_manifest({S::kTrain, S::kTest, S::kTrain, S::kVal, S::kTest},
                                       {"a.png", "b.png", "c.png", "d.png", "e.png"});
  std::vector<dd::RowSlot> slots;
  const dd::Dataset ds = dd::split_rows(m, 32, slots);
  ASSERT_EQ(slots.size(), 5u);
  const std::vector<std::pair<S, std::int64_t>> expected = {
      {S::kTrain, 0}, {S::kTest, 0}, {S::kTrain, 1}, {S::kVal, 0}, {S::kTest, 1}};
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(slots[i].split, expected[i].first) << i;
    EXPECT_EQ(slots[i].index, expected[i].second) << i;
  }
  EXPECT_EQ(ds.train.source, (std::vector<std::string>{"a.png", "c.png"}));
  EXPECT_EQ(ds.test.source, (std::vector<std::string>{"b.png", "e.png"}));
  EXPECT_EQ(ds.val.source, (std::vector<std::string>{"d.png"}));
  EXPECT_EQ(ds.train.label, (std::vector<int>{0, 0}));  // rows 0 and 2
  EXPECT_EQ(ds.test.label, (std::vector<int>{1, 0}));   // rows 1 and 4
  EXPECT_EQ(ds.test.sa, (std::vector<int>{0, 0}));
  EXPECT_EQ(ds.val.sa, (std::vector<int>{1}));          // row 3
  EXPECT_EQ(ds.train.height, 32);
  EXPECT_EQ(ds.test.width, 32);
  EXPECT_TRUE(ds.train.pixels.empty());
}

TEST_F(CsvFiles, DecodeRowsSendsEachRowOnceAndNamesTheLowestFailingRow) {
  // Three 16 x 16 8-bit gradients (k / 255 exactly), one missing file, one constant image.
  std::vector<std::string> paths;
  for (int k = 0; k < 3; ++k) {
    std::vector<float> px(256);
    for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<float>((i + 7 * k) % 256) / 255.0f;
    paths.push_back(path("g" + std::to_string(k) + ".png"));
    dd::write_grayscale_png(paths.back(), px.data(), 16, 16);
  }
  const std::vector<float> flat(256, 0.5f);
  dd::write_grayscale_png(path("flat.png"), flat.data(), 16, 16);
  paths.push_back(path("none.png"));
  paths.push_back(path("flat.png"));
  using S = dd::Split;
  const dd::Manifest m = hand_manifest({S::kTrain, S::kTest, S::kTrain, S::kTrain, S::kTest}, paths);
  dd::DecodeOptions options;
  options.image_size = 16;
  options.threads = 2;
  std::mutex lock;
  std::vector<int> seen(5, 0);
  std::vector<std::vector<float>> got(5);
  dd::decode_rows(m, {0, 1, 2}, options, [&](std::size_t row, const std::vector<float>& pixels) {
    const std::lock_guard<std::mutex> guard(lock);
    ++seen.at(row);
    got.at(row) = pixels;
  });
  EXPECT_EQ(seen, (std::vector<int>{1, 1, 1, 0, 0}));
  for (int k = 0; k < 3; ++k) {
    ASSERT_EQ(got[static_cast<std::size_t>(k)].size(), 256u);
    EXPECT_EQ(got[static_cast<std::size_t>(k)][10], static_cast<float>((10 + 7 * k) % 256) / 255.0f) << k;
  }
  for (int threads : {1, 2, 3}) {
    options.threads = threads;
    try {
      dd::decode_rows(m, {0, 1, 3, 4}, options, [](std::size_t, const std::vector<float>&) {});
      ADD_FAILURE() << "a missing image was decoded";
    } catch (const dd::RowDecodeError& e) {
      EXPECT_EQ(e.row, 3u);  // the lowest failing index (4 fails too), whichever thread met it first
      EXPECT_NE(std::string(e.what()).find("hand.csv:5"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("none.png"), std::string::npos) << e.what();
      EXPECT_EQ(e.exit_code(), 2);  // a DataError
    }
  }
  try {
    dd::decode_rows(m, {4}, options, [](std::size_t, const std::vector<float>&) {});
    ADD_FAILURE() << "a constant image was decoded";
  } catch (const dd::RowDecodeError& e) {
    EXPECT_EQ(e.row, 4u);
    EXPECT_NE(std::string(e.what()).find("hand.csv:6"), std::string::npos) << e.what();
  }
}

TEST(PhantomOptions, CheckOptionsNamesTheFieldAndTheValue) {
  EXPECT_NO_THROW(dd::check_options(dd::PhantomOptions{}));
  const auto expect_refused = [](auto change, const std::string& message) {
    dd::PhantomOptions o;
    change(o);
    expect_error<dne::ConfigError>([&] { dd::check_options(o); }, {message});
  };
  expect_refused([](dd::PhantomOptions& o) { o.bias = 1.5; }, "data.bias must be in [0, 1], got 1.5");
  expect_refused([](dd::PhantomOptions& o) { o.image_size = 16; }, "data.image_size must be in [32, 4096], got 16");
  expect_refused([](dd::PhantomOptions& o) { o.n_train = 0; }, "data.n_train must be >= 1, got 0");
  expect_refused([](dd::PhantomOptions& o) { o.n_val = -1; }, "data.n_val must be >= 0, got -1");
  expect_refused([](dd::PhantomOptions& o) { o.prevalence = std::nan(""); }, "data.prevalence");
  expect_refused([](dd::PhantomOptions& o) { o.noise_std = -0.5; }, "data.noise_std must be >= 0, got -0.5");
  expect_refused([](dd::PhantomOptions& o) { o.severity_min = 0.8; o.severity_max = 0.4; },
                 "data.severity_min (0.8) must be <= data.severity_max (0.4)");
  expect_refused([](dd::PhantomOptions& o) { o.age_effect = 0.75; }, "data.age_effect must be in [0, 0.5], got 0.75");
  expect_refused([](dd::PhantomOptions& o) { o.breast_contrast = std::numeric_limits<double>::infinity(); },
                 "data.breast_contrast");
  // The bounds themselves are allowed.
  dd::PhantomOptions edge;
  edge.image_size = 32;
  edge.bias = 1.0;
  edge.prevalence = 0.0;
  edge.age_effect = 0.5;
  EXPECT_NO_THROW(dd::check_options(edge));
}

}  // namespace
