// CSV manifest writer (phantom -> PNG files + manifest.csv) and reader (manifest -> Dataset);
// see manifest.hpp for the format. Every error names the CSV file and, for row problems, the
// 1-based line number, so a user can fix the offending row directly.
#include "dne/data/manifest.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/data/csv.hpp"
#include "dne/data/image_io.hpp"

namespace dne::data {
namespace {

namespace fs = std::filesystem;

std::string zero_pad(std::int64_t i, int digits) {
  std::string s = std::to_string(i);
  if (static_cast<int>(s.size()) < digits)
    s.insert(0, static_cast<std::size_t>(digits) - s.size(), '0');
  return s;
}

void make_dirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw StoreError("cannot create directory '" + dir.string() + "': " + ec.message());
}

}  // namespace

void write_phantom(const Dataset& ds, const std::string& out_dir) {
  validate(ds.train, "write_phantom train");
  validate(ds.test, "write_phantom test");
  const fs::path root(out_dir);
  const std::array<std::pair<const char*, const ImageSet*>, 2> splits = {
      {{"train", &ds.train}, {"test", &ds.test}}};

  std::string csv = "path,split,sex,label\n";
  for (const auto& [name, set] : splits) {
    make_dirs(root / name);
    const int digits = std::max<int>(
        6, static_cast<int>(std::to_string(std::max<std::int64_t>(set->size() - 1, 0)).size()));
    for (std::int64_t i = 0; i < set->size(); ++i) {
      const std::string rel = std::string(name) + "/" + zero_pad(i, digits) + ".png";
      write_grayscale_png((root / rel).string(), set->image(i), set->height, set->width);
      const auto k = static_cast<std::size_t>(i);
      csv += quote_csv(rel) + "," + name + "," + std::to_string(set->sa[k]) + "," +
             std::to_string(set->label[k]) + "\n";
    }
  }

  // montage: up to 4 test images per (sex, label) cell, one row per cell
  std::vector<std::int64_t> picks;
  for (int a = 0; a <= 1; ++a) {
    for (int y = 0; y <= 1; ++y) {
      int taken = 0;
      for (std::int64_t i = 0; i < ds.test.size() && taken < 4; ++i) {
        const auto k = static_cast<std::size_t>(i);
        if (ds.test.sa[k] == a && ds.test.label[k] == y) {
          picks.push_back(i);
          ++taken;
        }
      }
    }
  }
  if (!picks.empty()) {
    const int scale = static_cast<int>(
        std::max<std::int64_t>(1, 128 / std::max<std::int64_t>(ds.test.height, 1)));
    write_montage((root / "montage.png").string(), ds.test, picks, 4, scale);
  }

  // manifest last, atomically: it exists only when every image is complete
  write_file_atomically((root / "manifest.csv").string(), csv, "dne phantom: " + (root / "manifest.csv").string());
}

namespace {

/// Runs body(i) for i in [0, n) on `threads` threads (each takes the next index) until one
/// fails; the exception of the lowest failing index is rethrown after every thread ends, so what
/// is thrown does not depend on the thread count or the timing.
template <class Body>
void parallel_rows(std::size_t n, int threads, Body body) {
  std::vector<std::exception_ptr> errors(n);
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  // Indices are handed out in increasing order, so when index i fails every lower index has been
  // handed out already: stopping there still finds the lowest failing index, without decoding
  // the other 10^5 images first.
  const auto work = [&] {
    while (!failed) {
      const std::size_t i = next++;
      if (i >= n) return;
      try {
        body(i);
      } catch (...) {
        errors[i] = std::current_exception();
        failed = true;
      }
    }
  };
  const auto count = static_cast<std::size_t>(std::max(1, threads));
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < std::min(count, std::max<std::size_t>(n, 1)); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

const char* split_name(Split s) { return s == Split::kTrain ? "train" : s == Split::kVal ? "val" : "test"; }

/// Whether two files hold the same bytes (read in blocks; false if either cannot be read).
bool same_bytes(const std::string& a, const std::string& b) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  if (!fa || !fb) return false;
  std::array<char, 1 << 16> ba{}, bb{};
  while (fa && fb) {
    fa.read(ba.data(), ba.size());
    fb.read(bb.data(), bb.size());
    if (fa.gcount() != fb.gcount() || std::memcmp(ba.data(), bb.data(), static_cast<std::size_t>(fa.gcount())) != 0) return false;
  }
  return !fa.bad() && !fb.bad() && fa.eof() && fb.eof();
}

int parse_attribute(const std::string& v, const std::string& column, const std::string& where) {
  if (v == "0" || v == "M" || v == "m") return 0;
  if (v == "1" || v == "F" || v == "f") return 1;
  throw DataError(where + ": bad " + column + " '" + v + "' (expected 0, 1, M or F)");
}

/// Rows `indices` of `rows` kept by a stratified sample of `limit` (all when limit is 0 or larger).
std::vector<std::size_t> limit_rows(const std::vector<ManifestRow>& rows, const std::vector<std::size_t>& indices,
                                    std::int64_t limit, std::uint32_t step_base) {
  if (limit <= 0 || static_cast<std::int64_t>(indices.size()) <= limit) return indices;
  std::vector<int> sa, label;
  for (const auto i : indices) {
    sa.push_back(rows[i].sa);
    label.push_back(rows[i].label);
  }
  const auto picked = stratified_sample(sa, label, proportional_counts(cell_sizes(sa, label), limit), 0, step_base);
  std::vector<std::size_t> out;
  for (const auto k : picked) out.push_back(indices[static_cast<std::size_t>(k)]);
  return out;
}

}  // namespace

Manifest read_manifest(const std::string& csv_path, const ManifestOptions& options) {
  if (options.limit_train < 0 || options.limit_test < 0)
    throw ConfigError("data.limit_train and data.limit_test must be >= 0");
  const CsvTable table = read_csv(csv_path, {"path", "split", "label", options.sa_column});
  const int c_path = table.column("path"), c_split = table.column("split"), c_label = table.column("label"),
            c_sa = table.column(options.sa_column);
  const fs::path base = fs::path(csv_path).parent_path();
  Manifest manifest;
  manifest.csv_path = csv_path;
  manifest.csv_hash = table.content_hash;  // of the very bytes the rows were parsed from
  std::vector<ManifestRow> rows;
  for (const auto& r : table.rows) {
    const std::string where = table.where(r);
    const auto& f = r.fields;
    ManifestRow row;
    row.line = r.line;
    if (f[static_cast<std::size_t>(c_path)].empty()) throw DataError(where + ": empty path");
    // A NUL byte would silently cut the path at the system call (another file would be read).
    if (f[static_cast<std::size_t>(c_path)].find('\0') != std::string::npos)
      throw DataError(where + ": the path holds a NUL byte (a binary or corrupted manifest?)");
    const std::string& split = f[static_cast<std::size_t>(c_split)];
    if (split == "train") row.split = Split::kTrain;
    else if (split == "val") row.split = Split::kVal;
    else if (split == "test") row.split = Split::kTest;
    else throw DataError(where + ": unknown split '" + split + "' (expected train, val or test)");
    row.sa = parse_attribute(f[static_cast<std::size_t>(c_sa)], options.sa_column, where);
    const std::string& label = f[static_cast<std::size_t>(c_label)];
    if (label != "0" && label != "1") throw DataError(where + ": bad label '" + label + "' (expected 0 or 1)");
    row.label = label == "1" ? 1 : 0;
    const fs::path rel(f[static_cast<std::size_t>(c_path)]);
    row.path = (rel.is_absolute() ? rel : base / rel).string();
    rows.push_back(std::move(row));
  }
  manifest.rows_in_file = static_cast<std::int64_t>(rows.size());
  // One file in two splits is train/test leakage (checked on every row, before any limit).
  std::unordered_map<std::string, std::size_t> row_of_file;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto [first, fresh] = row_of_file.emplace(fs::absolute(rows[i].path).lexically_normal().string(), i);
    if (!fresh && rows[first->second].split != rows[i].split)
      throw DataError(csv_path + ":" + std::to_string(rows[i].line) + ": '" + rows[i].path + "' is in " +
                      split_name(rows[i].split) + " and, on line " + std::to_string(rows[first->second].line) + ", in " +
                      split_name(rows[first->second].split) + ": one image in two splits leaks into the evaluation");
  }

  std::vector<std::size_t> by_split[3];
  for (std::size_t i = 0; i < rows.size(); ++i) by_split[static_cast<int>(rows[i].split)].push_back(i);
  const auto& train = by_split[static_cast<int>(Split::kTrain)];
  const auto& val = by_split[static_cast<int>(Split::kVal)];
  const auto& test = by_split[static_cast<int>(Split::kTest)];
  if (train.empty()) throw DataError(csv_path + ": no rows with split 'train'");
  if (test.empty()) throw DataError(csv_path + ": no rows with split 'test'");
  std::vector<std::size_t> keep = limit_rows(rows, train, options.limit_train, 100);
  if (!val.empty()) {
    const std::int64_t val_limit =
        options.limit_train > 0 && static_cast<std::int64_t>(train.size()) > options.limit_train
            ? std::max<std::int64_t>(1, std::llround(static_cast<double>(val.size()) * static_cast<double>(options.limit_train) /
                                                     static_cast<double>(train.size())))
            : 0;
    const auto v = limit_rows(rows, val, val_limit, 104);
    keep.insert(keep.end(), v.begin(), v.end());
  }
  const auto t = limit_rows(rows, test, options.limit_test, 108);
  keep.insert(keep.end(), t.begin(), t.end());
  std::sort(keep.begin(), keep.end());
  for (const auto i : keep) {
    std::error_code ec;
    if (!fs::is_regular_file(rows[i].path, ec))
      throw DataError(csv_path + ":" + std::to_string(rows[i].line) + ": image file '" + rows[i].path + "' not found");
    manifest.rows.push_back(rows[i]);
  }
  for (const bool is_label : {true, false})
    for (int v = 0; v <= 1; ++v)
      if (std::none_of(manifest.rows.begin(), manifest.rows.end(), [&](const ManifestRow& r) { return r.split == Split::kTrain && (is_label ? r.label : r.sa) == v; }))
        throw DataError(csv_path + ": no train row with " + (is_label ? "label" : options.sa_column) + " " +
                        std::to_string(v) + " (the probes need both classes)");

  return manifest;
}

std::string data_content_hash(const Manifest& manifest, const ManifestOptions& options, FileFingerprint how,
                              int threads) {
  std::vector<std::string> prints(manifest.rows.size());
  parallel_rows(manifest.rows.size(), threads, [&](std::size_t i) {
    try {
      prints[i] = file_fingerprint(manifest.rows[i].path, how);
    } catch (const DataError& e) {
      throw DataError(manifest.csv_path + ":" + std::to_string(manifest.rows[i].line) + ": " + e.what());
    }
  });
  std::string text = "manifest " + manifest.csv_hash + "\nsa_column " + options.sa_column + "\nlimit_train " +
                     std::to_string(options.limit_train) + "\nlimit_test " + std::to_string(options.limit_test) + "\n";
  if (how == FileFingerprint::kContent) {
    // The same bytes under two names in two splits is leakage too. A CRC-32 match is confirmed
    // byte for byte (among 10^5 images some CRCs collide).
    std::unordered_map<std::string, std::size_t> row_of_print;
    for (std::size_t i = 0; i < prints.size(); ++i) {
      const auto [first, fresh] = row_of_print.emplace(prints[i], i);
      const auto& a = manifest.rows[first->second];
      const auto& b = manifest.rows[i];
      if (!fresh && a.split != b.split && same_bytes(a.path, b.path))
        throw DataError(manifest.csv_path + ":" + std::to_string(b.line) + ": '" + b.path + "' (" + split_name(b.split) +
                        ") has the same bytes as '" + a.path + "' on line " + std::to_string(a.line) + " (" +
                        split_name(a.split) + "): one image in two splits leaks into the evaluation");
    }
  }
  std::uint64_t h = fnv1a64(text);
  for (std::size_t i = 0; i < prints.size(); ++i) {
    const std::string line = manifest.rows[i].path + " " + prints[i] + "\n";
    h = fnv1a64(line.data(), line.size(), h);
  }
  return hex16(h);
}

Dataset split_rows(const Manifest& manifest, std::int64_t image_size, std::vector<RowSlot>& slots) {
  Dataset ds;
  ImageSet* sets[3] = {&ds.train, &ds.val, &ds.test};
  slots.assign(manifest.rows.size(), RowSlot{});
  for (std::size_t i = 0; i < manifest.rows.size(); ++i) {
    const auto& row = manifest.rows[i];
    ImageSet* set = sets[static_cast<int>(row.split)];
    slots[i] = {row.split, set->size()};
    set->label.push_back(row.label);
    set->sa.push_back(row.sa);
    set->source.push_back(row.path);
  }
  for (ImageSet* set : sets) set->height = set->width = image_size;
  return ds;
}

void decode_rows(const Manifest& manifest, const std::vector<std::size_t>& rows, const DecodeOptions& options,
                 const std::function<void(std::size_t row, const std::vector<float>& pixels)>& sink) {
  if (options.image_size < 1)
    throw ConfigError("data.image_size must be >= 1, got " + std::to_string(options.image_size));
  parallel_rows(rows.size(), options.threads, [&](std::size_t k) {
    const auto& row = manifest.rows.at(rows[k]);
    try {
      std::int64_t h = 0, w = 0;
      const auto px = read_grayscale_image(row.path, h, w, options.max_pixels);
      if (h < kMinImageSide || w < kMinImageSide)
        throw DataError("image '" + row.path + "' is " + std::to_string(w) + "x" + std::to_string(h) + ", smaller than " +
                        std::to_string(kMinImageSide) + "x" + std::to_string(kMinImageSide) + " (no X-ray; stretched it would be a blur)");
      if (std::all_of(px.begin(), px.end(), [&](float v) { return v == px.front(); }))
        throw DataError("image '" + row.path + "' is constant (every pixel " + std::to_string(px.front()) +
                        "): an empty or broken image");
      sink(rows[k], fit_square(px.data(), h, w, options.image_size, options.resize));
    } catch (const DataError& e) {
      throw RowDecodeError(rows[k], manifest.csv_path + ":" + std::to_string(row.line) + ": " + e.what());
    }
  });
}

Dataset decode_manifest(const Manifest& manifest, const DecodeOptions& options) {
  std::vector<RowSlot> slots;
  Dataset ds = split_rows(manifest, options.image_size, slots);
  ImageSet* sets[3] = {&ds.train, &ds.val, &ds.test};
  const auto hw = static_cast<std::size_t>(options.image_size * options.image_size);
  for (ImageSet* set : sets) set->pixels.assign(static_cast<std::size_t>(set->size()) * hw, 0.0f);
  std::vector<std::size_t> all(manifest.rows.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  decode_rows(manifest, all, options, [&](std::size_t row, const std::vector<float>& pixels) {
    const RowSlot slot = slots[row];
    std::copy(pixels.begin(), pixels.end(),
              sets[static_cast<int>(slot.split)]->pixels.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(slot.index) * hw));
  });
  validate(ds.train, manifest.csv_path + " (train)");
  validate(ds.val, manifest.csv_path + " (val)");
  validate(ds.test, manifest.csv_path + " (test)");
  return ds;
}

Dataset load_manifest(const std::string& csv_path, std::int64_t image_size) {
  DecodeOptions decode;
  decode.image_size = image_size;
  return decode_manifest(read_manifest(csv_path, ManifestOptions{}), decode);
}

}  // namespace dne::data
