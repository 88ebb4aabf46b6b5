// CSV manifest writer (phantom -> PNG files + manifest.csv) and reader (manifest -> Dataset);
// see manifest.hpp for the format. Every error names the CSV file and, for row problems, the
// 1-based line number, so a user can fix the offending row directly.
#include "dne/data/manifest.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/data/csv.hpp"
#include "dne/data/image_io.hpp"

namespace dne::data {
namespace {

namespace fs = std::filesystem;

constexpr std::array<const char*, 4> kHeader = {"path", "split", "sex", "label"};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

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

  // manifest last, atomically
  const fs::path final_path = root / "manifest.csv";
  const fs::path tmp_path = root / "manifest.csv.tmp";
  {
    std::ofstream out(tmp_path, std::ios::binary | std::ios::trunc);
    if (!out) throw StoreError("cannot write '" + tmp_path.string() + "'");
    out << csv;
    out.close();
    if (!out) throw StoreError("cannot write '" + tmp_path.string() + "'");
  }
  std::error_code ec;
  fs::rename(tmp_path, final_path, ec);
  if (ec) {
    fs::remove(tmp_path, ec);
    throw StoreError("cannot rename '" + tmp_path.string() + "' to '" + final_path.string() + "'");
  }
}

Dataset load_manifest(const std::string& csv_path, std::int64_t image_size) {
  if (image_size < 1) {
    throw ConfigError("data.image_size must be >= 1, got " + std::to_string(image_size));
  }
  std::ifstream in(csv_path, std::ios::binary);
  if (!in) throw DataError(csv_path + ": cannot open manifest");
  const fs::path base = fs::path(csv_path).parent_path();

  Dataset ds;
  ds.train.height = ds.train.width = image_size;
  ds.test.height = ds.test.width = image_size;
  std::string line;
  std::int64_t line_no = 0;
  bool have_header = false;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 BOM
    const std::string where = csv_path + ":" + std::to_string(line_no);
    if (!have_header) {
      const auto fields = split_csv_line(line, where);
      bool ok = fields.size() == kHeader.size();
      for (std::size_t i = 0; ok && i < kHeader.size(); ++i) ok = fields[i] == kHeader[i];
      if (!ok) {
        throw DataError(where + ": header must be 'path,split,sex,label', got '" + line + "'");
      }
      have_header = true;
      continue;
    }
    if (trim(line).empty()) continue;
    const auto f = split_csv_line(line, where);
    if (f.size() != 4) {
      throw DataError(where + ": expected 4 fields (path,split,sex,label), got " +
                      std::to_string(f.size()));
    }
    if (f[0].empty()) throw DataError(where + ": empty path");
    ImageSet* set = nullptr;
    if (f[1] == "train") {
      set = &ds.train;
    } else if (f[1] == "test") {
      set = &ds.test;
    } else {
      throw DataError(where + ": unknown split '" + f[1] + "' (expected train or test)");
    }
    int sa;
    if (f[2] == "0" || f[2] == "M" || f[2] == "m") {
      sa = 0;
    } else if (f[2] == "1" || f[2] == "F" || f[2] == "f") {
      sa = 1;
    } else {
      throw DataError(where + ": bad sex '" + f[2] + "' (expected 0, 1, M or F)");
    }
    int label;
    if (f[3] == "0") {
      label = 0;
    } else if (f[3] == "1") {
      label = 1;
    } else {
      throw DataError(where + ": bad label '" + f[3] + "' (expected 0 or 1)");
    }
    const fs::path rel(f[0]);
    const fs::path file = rel.is_absolute() ? rel : base / rel;
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) {
      throw DataError(where + ": image file '" + file.string() + "' not found");
    }
    std::int64_t h = 0, w = 0;
    std::vector<float> px;
    try {
      px = read_grayscale_png(file.string(), h, w);
    } catch (const DataError& e) {
      throw DataError(where + ": " + e.what());
    }
    if (h != image_size || w != image_size) {
      px = resize_bilinear(px.data(), h, w, image_size, image_size);
    }
    set->pixels.insert(set->pixels.end(), px.begin(), px.end());
    set->label.push_back(label);
    set->sa.push_back(sa);
    set->source.push_back(file.string());
  }
  if (in.bad()) throw DataError(csv_path + ": read error");
  if (!have_header)
    throw DataError(csv_path + ":1: empty manifest (expected header 'path,split,sex,label')");
  if (ds.train.size() == 0) throw DataError(csv_path + ": no rows with split 'train'");
  if (ds.test.size() == 0) throw DataError(csv_path + ": no rows with split 'test'");
  validate(ds.train, csv_path + " (train)");
  validate(ds.test, csv_path + " (test)");
  return ds;
}

}  // namespace dne::data
