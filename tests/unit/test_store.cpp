// HDF5 writer: values read back with the HDF5 C API directly (not through the writer), atomic
// commit (no final file before commit, no temporary after), cleanup without commit, errors.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>

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
    dne::store::ResultWriter w(path);
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
    dne::store::ResultWriter w((dir / "y.h5").string());
    w.attribute("/", "id", std::string("abc"));
  }
  EXPECT_EQ(files_in_dir(), 0u);
}

TEST_F(StoreTest, ErrorsAreStoreErrors) {
  dne::store::ResultWriter w((dir / "z.h5").string());
  EXPECT_THROW(w.dataset("/bad", std::vector<float>{1, 2, 3}, {2, 2}), dne::StoreError);
  w.dataset("/once", std::vector<float>{1}, {1});
  try {
    w.dataset("/once", std::vector<float>{1}, {1});
    FAIL() << "expected StoreError";
  } catch (const dne::StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("create dataset /once"), std::string::npos) << e.what();
  }
  EXPECT_THROW(dne::store::ResultWriter((dir / "no" / "such" / "dir.h5").string()), dne::StoreError);
  EXPECT_THROW(dne::store::inspect((dir / "absent.h5").string()), dne::StoreError);
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
