// HDF5 writer: values read back with the HDF5 C API directly (not through the writer), atomic
// commit (no final file before commit, no temporary after), cleanup without commit, errors.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "dne/core/errors.hpp"
#include "dne/core/text.hpp"
#include "dne/store/result_file.hpp"

namespace {

namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  fs::path dir = fs::temp_directory_path() / ("dne_store_" + std::to_string(::getpid()));
  void SetUp() override { fs::create_directories(dir); }
  void TearDown() override { fs::remove_all(dir); }
  std::size_t files_in_dir() const {
    return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
  }
};

TEST_F(StoreTest, WritesReadableValuesAndCommitsAtomically) {
  const auto path = (dir / "x.h5").string();
  {
    dne::store::H5Writer w(path);
    w.attribute("/", "id", std::string("abc"));
    w.attribute("/metrics", "accuracy", 0.75);
    w.attribute("/", "seed", std::int64_t{7});
    w.dataset("/noise", std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
    w.dataset("/test/label", std::vector<std::int32_t>{0, 1, 1}, {3});
    EXPECT_FALSE(fs::exists(path));  // nothing visible before commit
    EXPECT_EQ(files_in_dir(), 1u);   // only the temporary
    w.commit();
  }
  EXPECT_TRUE(fs::exists(path));
  EXPECT_EQ(files_in_dir(), 1u);  // temporary renamed, not copied

  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  float noise[6] = {};
  const hid_t d = H5Dopen2(f, "/noise", H5P_DEFAULT);
  const hid_t space = H5Dget_space(d);
  hsize_t dims[2] = {};
  EXPECT_EQ(H5Sget_simple_extent_ndims(space), 2);
  H5Sget_simple_extent_dims(space, dims, nullptr);
  EXPECT_EQ(dims[0], 2u);
  EXPECT_EQ(dims[1], 3u);
  H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, noise);
  EXPECT_EQ(noise[4], 5.0f);
  H5Sclose(space);
  H5Dclose(d);
  double acc = 0;
  const hid_t g = H5Gopen2(f, "/metrics", H5P_DEFAULT);
  const hid_t a = H5Aopen(g, "accuracy", H5P_DEFAULT);
  H5Aread(a, H5T_NATIVE_DOUBLE, &acc);
  EXPECT_EQ(acc, 0.75);
  H5Aclose(a);
  H5Gclose(g);
  H5Fclose(f);
  EXPECT_EQ(dne::store::read_root_string_attribute(path, "id"), "abc");
  EXPECT_EQ(dne::store::read_root_string_attribute(path, "missing"), "");
  const auto listing = dne::store::inspect(path);
  EXPECT_NE(listing.find("/noise  float32 (2, 3)"), std::string::npos) << listing;
  EXPECT_NE(listing.find("@accuracy = 0.75"), std::string::npos) << listing;
}

TEST_F(StoreTest, WriterWithoutCommitLeavesNothing) {
  {
    dne::store::H5Writer w((dir / "y.h5").string());
    w.attribute("/", "id", std::string("abc"));
  }
  EXPECT_EQ(files_in_dir(), 0u);
}

TEST_F(StoreTest, ErrorsAreStoreErrors) {
  dne::store::H5Writer w((dir / "z.h5").string());
  EXPECT_THROW(w.dataset("/bad", std::vector<float>{1, 2, 3}, {2, 2}), dne::StoreError);
  w.dataset("/once", std::vector<float>{1}, {1});
  try {
    w.dataset("/once", std::vector<float>{1}, {1});
    FAIL() << "expected StoreError";
  } catch (const dne::StoreError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("create dataset /once"), std::string::npos) << what;
    // HDF5's whole stack, every frame with its major / minor message (not only the innermost).
    EXPECT_NE(what.find("#0 "), std::string::npos) << what;
    EXPECT_NE(what.find("; #1 "), std::string::npos) << what;
    EXPECT_NE(what.find("H5Dcreate2(): unable to create dataset"), std::string::npos) << what;
    EXPECT_NE(what.find(" / "), std::string::npos) << what;
  }
  EXPECT_THROW(dne::store::H5Writer((dir / "no" / "such" / "dir.h5").string()), dne::StoreError);
  EXPECT_THROW(dne::store::inspect((dir / "absent.h5").string()), dne::StoreError);
}

TEST_F(StoreTest, ReaderSkipsNonNumericMetricsAndInspectPrintsFixedLengthStrings) {
  // What other writers put in files: a string among the metrics (read_experiment_record used to
  // record it as NaN through a failed, unchecked read) and a fixed-length string attribute
  // (inspect printed "(string)").
  const auto path = (dir / "foreign.h5").string();
  {
    dne::store::H5Writer w(path);
    w.attribute("/", "id", std::string("abc"));
    w.attribute("/metrics", "accuracy", 0.5);
    w.attribute("/metrics", "note", std::string("not a number"));
    w.commit();
  }
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, 5);
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(f, "label", type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, type, "fixed");
  H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
  H5Fclose(f);
  const auto record = dne::store::read_experiment_record(path);
  EXPECT_EQ(record.metrics, (std::map<std::string, double>{{"accuracy", 0.5}}));
  const auto listing = dne::store::inspect(path);
  EXPECT_NE(listing.find("@label = \"fixed\""), std::string::npos) << listing;
  EXPECT_NE(listing.find("@note = \"not a number\""), std::string::npos) << listing;
}

TEST_F(StoreTest, ADatasetClaimingMoreThanTheFileStoresIsCorrupt) {
  // A contiguous (unfiltered) dataset whose dataspace claims 10^9 values while the file holds 8
  // bytes for it: verify_file refuses it without trying to allocate 8 GB.
  const auto path = (dir / "claims.h5").string();
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t n = 1;
  const hid_t space = H5Screate_simple(1, &n, nullptr);
  const hid_t d = H5Dcreate2(f, "/x", H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const double one = 1.0;
  H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &one);
  H5Dclose(d);
  H5Sclose(space);
  H5Fclose(f);
  dne::store::verify_file(path);  // as written: fine
  // Patch the dataspace message's dimension (8 little-endian bytes holding 1) to 10^9.
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string one_dim("\x01\x00\x00\x00\x00\x00\x00\x00", 8);
  std::size_t patched = 0;
  // The dataspace message: version 1, rank 1, flags, reserved (5 bytes), then the dimension.
  for (std::size_t at = bytes.find(std::string("\x01\x01", 2)); at != std::string::npos; at = bytes.find(std::string("\x01\x01", 2), at + 1))
    if (at + 16 <= bytes.size() && bytes.compare(at + 8, 8, one_dim) == 0) {
      const std::uint64_t big = 1000000000;
      std::memcpy(&bytes[at + 8], &big, 8);
      ++patched;
    }
  ASSERT_GE(patched, 1u);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  try {
    dne::store::verify_file(path);
    FAIL() << "expected StoreError";
  } catch (const dne::StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("is corrupt: dataset /x claims 1000000000 values (8000000000 bytes) but the file stores 8 bytes"),
              std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Text, ValidUtf8EscapesEveryBadByteAndKeepsGoodSequences) {
  EXPECT_EQ(dne::valid_utf8("plain ascii\twith tab\nand newline"), "plain ascii\twith tab\nand newline");
  EXPECT_EQ(dne::valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(dne::valid_utf8("\xff\xfe" "ab"), "\\xff\\xfeab");
  EXPECT_EQ(dne::valid_utf8("\xc0\xaf"), "\\xc0\\xaf");                  // overlong '/'
  EXPECT_EQ(dne::valid_utf8("\xed\xa0\x80"), "\\xed\\xa0\\x80");          // a UTF-16 surrogate
  EXPECT_EQ(dne::valid_utf8("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(dne::valid_utf8("\xe2\x82"), "\\xe2\\x82");                  // truncated
  EXPECT_EQ(dne::valid_utf8(std::string("a\0b", 3)), "a\\x00b");
}
