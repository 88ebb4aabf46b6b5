// The store module's HDF5 helpers (checked calls, the lock, handles, listings, size checks) and
// the writer/reader features the sweep and the image cache rely on (nested groups, raw reserved
// datasets, external links, records of experiment files). Files are written with H5Writer or the
// HDF5 C API and read back with the project's reader and, independently, with the C API or
// h5dump.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/store/h5_checked.hpp"
#include "dne/store/h5_objects.hpp"
#include "dne/store/index_file.hpp"
#include "dne/store/result_file.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace ds = dne::store::detail;
using dne::store::H5Reader;
using dne::store::H5Writer;
using dne_test::expect_error;

class H5Helpers : public dne_test::TempDirTest {
 protected:
  /// A file written by H5Writer: root string and number attributes, nested groups, datasets.
  std::string sample_file(const std::string& name) const {
    const std::string p = path(name);
    H5Writer w(p);
    w.attribute("/", "id", std::string("0123abcd"));
    w.attribute("/", "status", std::string("complete"));
    w.attribute("/", "note", std::string("line one\nline two"));
    w.attribute("/metrics", "accuracy", 0.75);
    w.attribute("/metrics", "auc", 0.5);
    w.attribute("/metrics", "label", std::string("not a number"));
    w.attribute("/control/metrics", "accuracy", 0.625);
    w.attribute("/timings", "total_s", 12.5);
    w.attribute("/provenance", "queries", std::int64_t{4096});
    w.attribute("/provenance", "group_size", std::int64_t{2});
    w.attribute("/a/b/c", "depth", std::int64_t{3});  // three groups made on the way
    w.dataset("/a/values", std::vector<double>{1.5, -2.0, 3.25, 0.0, 8.0, 9.5}, {2, 3});
    w.dataset("/a/labels", std::vector<std::int32_t>{0, 1, 1}, {3});
    w.commit();
    return p;
  }
};

/// stdout of `command` (h5dump, the independent reader).
std::string run(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  std::string out;
  if (!pipe) return out;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe.get())) > 0;) out.append(buffer, n);
  return out;
}

TEST_F(H5Helpers, TypeSizeIsTheDatatypesWidthAndFailureIsAStoreError) {
  EXPECT_EQ(ds::type_size(H5T_NATIVE_INT32, "int32"), 4u);
  EXPECT_EQ(ds::type_size(H5T_NATIVE_DOUBLE, "double"), 8u);
  EXPECT_EQ(ds::type_size(H5T_STD_U16LE, "u16"), 2u);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  expect_error<dne::StoreError>([] { ds::type_size(H5I_INVALID_HID, "the pixels' type"); },
                                {"the pixels' type", "H5Tget_size"});
}

TEST(Hdf5Lock, IsOneRecursiveProcessWideLock) {
  EXPECT_EQ(&ds::hdf5_mutex(), &ds::hdf5_mutex());
  std::atomic<int> other_got_it{-1};
  {
    const ds::Hdf5Lock outer;
    const ds::Hdf5Lock inner;  // the same thread may take it again (an entry point calling another)
    std::thread other([&] {
      const bool got = ds::hdf5_mutex().try_lock();
      if (got) ds::hdf5_mutex().unlock();
      other_got_it = got ? 1 : 0;
    });
    other.join();
    EXPECT_EQ(other_got_it.load(), 0);  // held: another thread must wait
  }
  std::thread after([&] {
    const bool got = ds::hdf5_mutex().try_lock();
    if (got) ds::hdf5_mutex().unlock();
    other_got_it = got ? 1 : 0;
  });
  after.join();
  EXPECT_EQ(other_got_it.load(), 1);  // both guards released it
}

TEST_F(H5Helpers, H5HandleClosesEveryKindOfHandleAtScopeExit) {
  const std::string p = sample_file("h.h5");
  hid_t file = -1, group = -1, dset = -1, space = -1, type = -1, attr = -1, plist = -1;
  {
    const ds::H5Handle f(H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    const ds::H5Handle g(H5Gopen2(f.id, "/a", H5P_DEFAULT));
    const ds::H5Handle d(H5Dopen2(f.id, "/a/values", H5P_DEFAULT));
    const ds::H5Handle s(H5Dget_space(d.id));
    const ds::H5Handle t(H5Dget_type(d.id));
    const ds::H5Handle a(H5Aopen(f.id, "id", H5P_DEFAULT));
    const ds::H5Handle pl(H5Pcreate(H5P_FILE_ACCESS));
    const ds::H5Handle none(H5I_INVALID_HID);  // nothing to close
    file = f.id, group = g.id, dset = d.id, space = s.id, type = t.id, attr = a.id, plist = pl.id;
    for (const hid_t id : {file, group, dset, space, type, attr, plist}) EXPECT_GT(H5Iis_valid(id), 0) << id;
  }
  for (const hid_t id : {file, group, dset, space, type, attr, plist}) EXPECT_LE(H5Iis_valid(id), 0) << id;
  // H5Pclose on the property list the handle closed fails: it is gone.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  EXPECT_LT(H5Pclose(plist), 0);
  // The file is really closed: it can be opened for writing again.
  const hid_t again = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  EXPECT_GE(again, 0);
  if (again >= 0) H5Fclose(again);
}

TEST_F(H5Helpers, LinkExistsAsksEveryPrefix) {
  const std::string p = sample_file("l.h5");
  const ds::H5Handle f(H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  EXPECT_TRUE(ds::link_exists(f.id, "/", "l.h5"));
  EXPECT_TRUE(ds::link_exists(f.id, "/a", "l.h5"));
  EXPECT_TRUE(ds::link_exists(f.id, "/a/b/c", "l.h5"));
  EXPECT_TRUE(ds::link_exists(f.id, "/a/values", "l.h5"));
  EXPECT_FALSE(ds::link_exists(f.id, "/a/b/d", "l.h5"));
  EXPECT_FALSE(ds::link_exists(f.id, "/x/y/z", "l.h5"));  // a missing intermediate group is a no, not an error
  EXPECT_FALSE(ds::link_exists(f.id, "/metric", "l.h5"));
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  expect_error<dne::StoreError>([] { ds::link_exists(H5I_INVALID_HID, "/a", "closed.h5"); }, {"closed.h5", "/a"});
}

TEST(RequirePlausible, MemoryForReadRefusesMoreThanHalfOfWhatIsAvailable) {
  EXPECT_NO_THROW(ds::require_memory_for_read(1e6, "/small"));
  expect_error<dne::StoreError>([] { ds::require_memory_for_read(1e18, "/test/pixels"); },
                                {"/test/pixels", "claims 1000000000.000000 GB"});
}

/// A contiguous float64 dataset of `declared` values in a new file, `written` of them written.
std::string contiguous_file(const std::string& p, hsize_t declared, bool write) {
  const hid_t f = H5Fcreate(p.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const hid_t space = H5Screate_simple(1, &declared, nullptr);
  const hid_t d = H5Dcreate2(f, "/x", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (write) {
    const std::vector<double> values(declared, 2.5);
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  }
  H5Dclose(d);
  H5Sclose(space);
  H5Fclose(f);
  return p;
}

TEST_F(H5Helpers, RequirePlausibleSizeComparesTheClaimWithTheStorage) {
  const std::string written = contiguous_file(path("w.h5"), 10, true);
  const ds::H5Handle f(H5Fopen(written.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  const ds::H5Handle d(H5Dopen2(f.id, "/x", H5P_DEFAULT));
  EXPECT_NO_THROW(ds::require_plausible_size(d.id, 10, 8, "/x"));  // 80 bytes stored for 80 claimed
  // A dataspace that claims 11 values where the file stores 80 bytes is corrupt.
  expect_error<dne::StoreError>([&] { ds::require_plausible_size(d.id, 11, 8, "/x"); },
                                {"/x", "claims 11 values (88 bytes)", "stores 80 bytes", "corrupt"});
  // Declared but never written: nothing stored, fill values; only the memory is checked.
  const std::string empty = contiguous_file(path("e.h5"), 10, false);
  const ds::H5Handle fe(H5Fopen(empty.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  const ds::H5Handle de(H5Dopen2(fe.id, "/x", H5P_DEFAULT));
  EXPECT_NO_THROW(ds::require_plausible_size(de.id, 10, 8, "/x"));
  EXPECT_THROW(ds::require_plausible_size(de.id, 1e17, 8, "/x"), dne::StoreError);  // memory
}

TEST_F(H5Helpers, ListingsOfAttributesAndObjectsAreInNameOrder) {
  const std::string p = sample_file("n.h5");
  const ds::H5Handle f(H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  EXPECT_EQ(ds::attribute_names(f.id, "/"), (std::vector<std::string>{"id", "note", "status"}));
  const ds::H5Handle metrics(H5Gopen2(f.id, "/metrics", H5P_DEFAULT));
  EXPECT_EQ(ds::attribute_names(metrics.id, "/metrics"), (std::vector<std::string>{"accuracy", "auc", "label"}));
  const std::vector<ds::ObjectName> objects = ds::object_names(f.id, "n.h5");
  std::vector<std::string> names;
  for (const ds::ObjectName& o : objects) names.push_back(o.path);
  EXPECT_EQ(names, (std::vector<std::string>{"/", "/a", "/a/b", "/a/b/c", "/a/labels", "/a/values", "/control",
                                             "/control/metrics", "/metrics", "/provenance", "/timings"}));
  EXPECT_EQ(objects[0].type, H5O_TYPE_GROUP);
  EXPECT_EQ(objects[4].type, H5O_TYPE_DATASET);
  EXPECT_EQ(objects[3].type, H5O_TYPE_GROUP);
}

TEST_F(H5Helpers, AttributeTextAndRootStringAsInspectPrintsThem) {
  const std::string p = sample_file("t.h5");
  const ds::H5Handle f(H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  const auto text = [&](const char* object, const char* name) {
    const ds::H5Handle a(H5Aopen_by_name(f.id, object, name, H5P_DEFAULT, H5P_DEFAULT));
    return ds::attribute_text(a.id, std::string(object) + "@" + name);
  };
  EXPECT_EQ(text("/", "id"), "\"0123abcd\"");
  EXPECT_EQ(text("/", "note"), "|\n        line one\n        line two");
  EXPECT_EQ(text("/metrics", "accuracy"), "0.75");
  EXPECT_EQ(text("/provenance", "queries"), "4096");
  EXPECT_EQ(ds::root_string(f.id, "id"), "0123abcd");
  EXPECT_EQ(ds::root_string(f.id, "status"), "complete");
  EXPECT_EQ(ds::root_string(f.id, "absent"), "");
}

TEST_F(H5Helpers, ExperimentRecordHoldsTheRootMetricsTimingsAndProvenance) {
  const dne::store::ExperimentRecord r = dne::store::read_experiment_record(sample_file("r.h5"));
  EXPECT_EQ(r.id, "0123abcd");
  EXPECT_EQ(r.status, "complete");
  // Numeric metrics only; the control's under "control_".
  EXPECT_EQ(r.metrics, (std::map<std::string, double>{{"accuracy", 0.75}, {"auc", 0.5}, {"control_accuracy", 0.625}}));
  EXPECT_EQ(r.wall_s, 12.5);
  EXPECT_EQ(r.queries, 4096);
  EXPECT_EQ(r.ranks, 2);
  // An empty file: nothing recorded, the documented "unknown" values.
  { H5Writer(path("empty.h5")).commit(); }
  const auto empty = dne::store::read_experiment_record(path("empty.h5"));
  EXPECT_EQ(empty.id, "");
  EXPECT_TRUE(empty.metrics.empty());
  EXPECT_TRUE(std::isnan(empty.wall_s));
  EXPECT_EQ(empty.queries, -1);
  EXPECT_EQ(empty.ranks, 0);
  EXPECT_THROW(dne::store::read_experiment_record(path("none.h5")), dne::StoreError);
}

TEST_F(H5Helpers, ReaderAttributesChildrenAndNestedGroupsAgreeWithH5dump) {
  // H5Writer::ensure_group makes "/a/b/c" and its parents; write_raw stores the datasets.
  const std::string p = sample_file("g.h5");
  const H5Reader r(p);
  EXPECT_EQ(r.children("/"), (std::vector<std::string>{"a", "control", "metrics", "provenance", "timings"}));
  EXPECT_EQ(r.children("/a"), (std::vector<std::string>{"b", "labels", "values"}));
  EXPECT_EQ(r.children("/a/b"), (std::vector<std::string>{"c"}));
  EXPECT_TRUE(r.has_attribute("/a/b/c", "depth"));
  EXPECT_FALSE(r.has_attribute("/a/b/c", "width"));
  EXPECT_FALSE(r.has_attribute("/a/b", "depth"));
  EXPECT_EQ(r.string_attribute("/", "status"), "complete");
  EXPECT_EQ(r.double_attribute("/metrics", "accuracy"), 0.75);
  EXPECT_EQ(r.double_attribute("/timings", "total_s"), 12.5);
  expect_error<dne::StoreError>([&] { r.string_attribute("/", "missing"); }, {"missing"});
  // h5dump reads the same file.
  const std::string dump = run("h5dump -g /a/b/c -A " + p + " 2>&1");
  EXPECT_NE(dump.find("GROUP \"/a/b/c\""), std::string::npos) << dump;
  EXPECT_NE(dump.find("ATTRIBUTE \"depth\""), std::string::npos) << dump;
  EXPECT_NE(dump.find("(0): 3"), std::string::npos) << dump;
  const std::string values = run("h5dump -d /a/values " + p + " 2>&1");
  EXPECT_NE(values.find("DATASPACE  SIMPLE { ( 2, 3 ) / ( 2, 3 ) }"), std::string::npos) << values;
  EXPECT_NE(values.find("(0,0): 1.5, -2, 3.25,"), std::string::npos) << values;
  EXPECT_NE(values.find("(1,0): 0, 8, 9.5"), std::string::npos) << values;
  const std::string status = run("h5dump -a /status " + p + " 2>&1");
  EXPECT_NE(status.find("(0): \"complete\""), std::string::npos) << status;
}

TEST_F(H5Helpers, HasStoredDataTellsADeclaredDatasetFromAWrittenOne) {
  contiguous_file(path("declared.h5"), 4, false);
  contiguous_file(path("written.h5"), 4, true);
  EXPECT_FALSE(H5Reader(path("declared.h5")).has_stored_data("/x"));
  EXPECT_TRUE(H5Reader(path("written.h5")).has_stored_data("/x"));
  EXPECT_TRUE(H5Reader(sample_file("s.h5")).has_stored_data("/a/values"));
}

TEST_F(H5Helpers, ReserveRawThenRawBytesAtTheOffsetReadBackThroughHdf5) {
  const std::string p = path("raw.h5");
  H5Writer w(p);
  w.attribute("/", "format", std::int64_t{2});
  const std::uint64_t offset = w.reserve_raw("/train/pixels", 16, {2, 3});
  const std::uint64_t offset8 = w.reserve_raw("/test/pixels", 8, {4});
  EXPECT_EQ(w.reserve_raw("/val/pixels", 8, {0, 3}), 0u);  // empty: nothing to write
  EXPECT_GT(offset, 0u);
  w.close_for_raw_writes();
  // Little-endian 16-bit values 1, 2, 300, 65535, 0, 4660 written with pwrite, as other ranks do.
  const unsigned char bytes16[12] = {1, 0, 2, 0, 0x2c, 0x01, 0xff, 0xff, 0, 0, 0x34, 0x12};
  const unsigned char bytes8[4] = {9, 8, 7, 255};
  const int fd = ::open(w.temp_path().c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes16, sizeof bytes16, static_cast<off_t>(offset)), 12);
  ASSERT_EQ(::pwrite(fd, bytes8, sizeof bytes8, static_cast<off_t>(offset8)), 4);
  ::close(fd);
  w.commit();
  const H5Reader r(p);
  const auto extent = r.raw_extent("/train/pixels");
  EXPECT_EQ(extent.offset, offset);
  EXPECT_EQ(extent.bytes, 12u);
  EXPECT_EQ(extent.element_size, 2u);
  EXPECT_EQ(extent.dims, (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(r.raw_extent("/test/pixels").element_size, 1u);
  std::vector<std::uint64_t> dims;
  EXPECT_EQ(r.floats("/train/pixels", dims), (std::vector<float>{1, 2, 300, 65535, 0, 4660}));
  // The C API agrees on the offset and the values.
  const ds::H5Handle f(H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  const ds::H5Handle d(H5Dopen2(f.id, "/test/pixels", H5P_DEFAULT));
  EXPECT_EQ(H5Dget_offset(d.id), offset8);
  unsigned char back[4] = {};
  ASSERT_GE(H5Dread(d.id, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, back), 0);
  EXPECT_EQ(std::vector<int>(back, back + 4), (std::vector<int>{9, 8, 7, 255}));
  // A float dataset has no raw extent.
  expect_error<dne::StoreError>([&] { H5Reader(sample_file("f.h5")).raw_extent("/a/values"); }, {"/a/values"});
}

TEST_F(H5Helpers, ExternalLinkResolvesAgainstTheLinkingFilesFolder) {
  fs::create_directories(path("experiments"));
  {
    H5Writer target(path("experiments/abc.h5"));
    target.dataset("/test/score", std::vector<float>{0.25f, 0.75f}, {2});
    target.commit();
  }
  {
    H5Writer index(path("index.h5"));
    index.external_link("/experiments/abc", dne::store::experiment_file("abc"), "/");
    index.commit();
  }
  const H5Reader r(path("index.h5"));
  EXPECT_TRUE(r.exists("/experiments/abc/test/score"));
  std::vector<std::uint64_t> dims;
  EXPECT_EQ(r.floats("/experiments/abc/test/score", dims), (std::vector<float>{0.25f, 0.75f}));
  const std::string dump = run("h5dump -n " + path("index.h5") + " 2>&1");
  EXPECT_NE(dump.find("/experiments/abc -> experiments/abc.h5 /"), std::string::npos) << dump;
}

TEST(IndexFile, ExperimentFileIsRelativeToTheRunDirectory) {
  EXPECT_EQ(dne::store::experiment_file("0123456789abcdef"), "experiments/0123456789abcdef.h5");
  EXPECT_EQ(dne::store::experiment_file("x"), "experiments/x.h5");
}

TEST(ResultFile, NowIso8601IsUtcAndNow) {
  const std::time_t before = std::time(nullptr);
  const std::string now = dne::store::now_iso8601();
  const std::time_t after = std::time(nullptr);
  ASSERT_TRUE(std::regex_match(now, std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)"))) << now;
  std::tm parts{};
  ASSERT_NE(::strptime(now.c_str(), "%Y-%m-%dT%H:%M:%SZ", &parts), nullptr);
  const std::time_t t = ::timegm(&parts);  // read as UTC
  EXPECT_GE(t, before);
  EXPECT_LE(t, after);
}

}  // namespace
