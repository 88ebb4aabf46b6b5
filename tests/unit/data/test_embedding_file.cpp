// Embedding files (data.source = "embeddings"): a hand-written file read back, the layout found
// in a result file's /embeddings group, and one DataError naming the file and the dataset for
// every malformed input.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/data/embedding_file.hpp"
#include "dne/store/result_file.hpp"
#include "test_support.hpp"

namespace {

using dne::DataError;
using dne_test::expect_error;

dne::data::ImageSet rows(std::int64_t d, std::vector<float> x, std::vector<int> label, std::vector<int> sa,
                         std::vector<float> age = {}) {
  dne::data::ImageSet s;
  s.height = 1;
  s.width = d;
  s.pixels = std::move(x);
  s.label = std::move(label);
  s.sa = std::move(sa);
  s.age = std::move(age);
  return s;
}

class EmbeddingFileTest : public dne_test::TempDirTest {
 protected:
  /// A file with train (3 rows, D = 2) and test (2 rows) under `group`, optionally with ages.
  std::string write(const std::string& name, const std::string& group, bool with_age) const {
    const auto file = path(name);
    dne::store::H5Writer w(file);
    const std::string g = group == "/" ? "" : group;
    dne::data::write_embedding_split(
        w, g + "/train", rows(2, {1, 2, 3, 4, 5, 6}, {0, 1, 1}, {1, 0, 1}, with_age ? std::vector<float>{30, 40, 50} : std::vector<float>{}));
    dne::data::write_embedding_split(w, g + "/test", rows(2, {7, 8, 9, 10}, {1, 0}, {0, 1}, with_age ? std::vector<float>{60, 70} : std::vector<float>{}));
    w.commit();
    return file;
  }
};

TEST_F(EmbeddingFileTest, HandWrittenFileReadsBackRowByRow) {
  const auto file = write("e.h5", "/", true);
  EXPECT_EQ(dne::data::find_embedding_group(file, ""), "/");
  const auto ds = dne::data::read_embeddings(file, "");
  EXPECT_EQ(ds.train.size(), 3);
  EXPECT_EQ(ds.train.height, 1);
  EXPECT_EQ(ds.train.width, 2);
  EXPECT_EQ(ds.train.pixels, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(ds.train.label, (std::vector<int>{0, 1, 1}));
  EXPECT_EQ(ds.train.sa, (std::vector<int>{1, 0, 1}));
  EXPECT_EQ(ds.train.age, (std::vector<float>{30, 40, 50}));
  EXPECT_EQ(ds.test.pixels, (std::vector<float>{7, 8, 9, 10}));
  EXPECT_EQ(ds.test.age, (std::vector<float>{60, 70}));
  EXPECT_EQ(ds.val.size(), 0);
  dne::data::validate(ds.train, "train");  // the rows pass the image sets' checks
}

TEST_F(EmbeddingFileTest, ResultFileGroupIsFoundWithoutBeingNamed) {
  const auto file = write("r.h5", "/embeddings", false);
  EXPECT_EQ(dne::data::find_embedding_group(file, ""), "/embeddings");
  const auto ds = dne::data::read_embeddings(file, "/embeddings");
  EXPECT_EQ(ds.test.label, (std::vector<int>{1, 0}));
  EXPECT_TRUE(ds.train.age.empty());
  expect_error<DataError>([&] { dne::data::read_embeddings(file, "/other"); }, {file, "no group /other"});
}

TEST_F(EmbeddingFileTest, MalformedFilesAreOneDataErrorNamingTheDataset) {
  {  // no train/x anywhere
    const auto file = path("empty.h5");
    dne::store::H5Writer w(file);
    w.dataset("/something", std::vector<float>{1}, {1});
    w.commit();
    expect_error<DataError>([&] { dne::data::read_embeddings(file, ""); }, {file, "neither /train/x nor /embeddings/train/x"});
  }
  {  // a label that is not 0/1
    const auto file = path("label.h5");
    dne::store::H5Writer w(file);
    dne::data::write_embedding_split(w, "/train", rows(1, {1, 2}, {0, 2}, {0, 1}));
    dne::data::write_embedding_split(w, "/test", rows(1, {1, 2}, {0, 1}, {0, 1}));
    w.commit();
    expect_error<DataError>([&] { dne::data::read_embeddings(file, ""); }, {file, "/train/label[1] = 2", "expected 0 or 1"});
  }
  {  // test width unlike train's
    const auto file = path("width.h5");
    dne::store::H5Writer w(file);
    dne::data::write_embedding_split(w, "/train", rows(2, {1, 2, 3, 4}, {0, 1}, {0, 1}));
    dne::data::write_embedding_split(w, "/test", rows(1, {1, 2}, {0, 1}, {0, 1}));
    w.commit();
    expect_error<DataError>([&] { dne::data::read_embeddings(file, ""); }, {file, "train D = 2", "test D = 1"});
  }
  {  // missing sa, and a NaN
    const auto file = path("sa.h5");
    dne::store::H5Writer w(file);
    w.dataset("/train/x", std::vector<float>{1, std::nanf("")}, {2, 1});
    w.dataset("/train/label", std::vector<std::int32_t>{0, 1}, {2});
    w.commit();
    expect_error<DataError>([&] { dne::data::read_embeddings(file, ""); }, {file, "/train/sa is missing"});
  }
  {
    const auto file = path("nan.h5");
    dne::store::H5Writer w(file);
    w.dataset("/train/x", std::vector<float>{1, std::nanf("")}, {2, 1});
    w.dataset("/train/label", std::vector<std::int32_t>{0, 1}, {2});
    w.dataset("/train/sa", std::vector<std::int32_t>{0, 1}, {2});
    w.commit();
    expect_error<DataError>([&] { dne::data::read_embeddings(file, ""); }, {file, "/train/x row 1 has a non-finite value"});
  }
  expect_error<DataError>([&] { dne::data::read_embeddings(path("absent.h5"), ""); }, {"absent.h5"});
  write_text("text.h5", "not hdf5");
  expect_error<DataError>([&] { dne::data::read_embeddings(path("text.h5"), ""); }, {"text.h5"});
}

// An export interrupted after /train/x was declared (before: HDF5's fill values, all zeros, were
// read as embeddings and trained on).
TEST_F(EmbeddingFileTest, ADatasetDeclaredButNeverWrittenIsADataError) {
  const auto file = write("e.h5", "/", false);
  {  // declare /train/x2 with the HDF5 C API and write nothing, then swap it in for /train/x
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hsize_t dims[2] = {3, 2};
    const hid_t space = H5Screate_simple(2, dims, nullptr);
    const hid_t d = H5Dcreate2(f, "/train/x_unwritten", H5T_NATIVE_FLOAT, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(d, 0);
    H5Dclose(d);
    H5Sclose(space);
    ASSERT_GE(H5Ldelete(f, "/train/x", H5P_DEFAULT), 0);
    ASSERT_GE(H5Lmove(f, "/train/x_unwritten", f, "/train/x", H5P_DEFAULT, H5P_DEFAULT), 0);
    H5Fclose(f);
  }
  expect_error<DataError>([&] { dne::data::read_embeddings(file, ""); },
                          {file, "/train/x was declared but its values were never written"});
}

}  // namespace
