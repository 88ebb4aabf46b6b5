// CSV tables (see csv.hpp): one line splitter shared by the manifest reader and the importers,
// and a whole-file reader that goes through zlib so that plain and gzip files read the same way.
#include "dne/data/csv.hpp"

#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <memory>

#include "dne/core/errors.hpp"
#include "dne/core/hash.hpp"

namespace dne::data {
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

/// Lines of a plain or gzip file (gzread reads an uncompressed file as it is), without line ends;
/// `hash` receives the FNV-1a-64 of the bytes read.
std::vector<std::string> read_lines(const std::string& path, std::string& hash) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), gzclose);
  if (!file) throw DataError(path + ": cannot open");
  std::vector<std::string> lines;
  std::string content;
  char buffer[1 << 16];
  for (;;) {
    const int n = gzread(file.get(), buffer, sizeof buffer);
    if (n < 0) {
      int code = 0;
      throw DataError(path + ": read error (" + gzerror(file.get(), &code) + ")");
    }
    if (n == 0) break;
    content.append(buffer, static_cast<std::size_t>(n));
  }
  // A cut-off gzip stream ends with n = 0 like a whole one: only the stream state tells.
  int code = Z_OK;
  const char* message = gzerror(file.get(), &code);
  if (code != Z_OK && code != Z_STREAM_END)
    throw DataError(path + ": truncated or corrupt gzip file (" + message + ")");
  if (gzclose(file.release()) != Z_OK) throw DataError(path + ": truncated or corrupt gzip file");
  hash = hex16(fnv1a64(content));
  std::size_t start = 0;
  while (start < content.size()) {
    auto end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    std::string line = content.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  if (!lines.empty() && lines.front().rfind("\xEF\xBB\xBF", 0) == 0) lines.front().erase(0, 3);  // UTF-8 BOM
  return lines;
}

}  // namespace

int CsvTable::column(const std::string& name) const {
  for (std::size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  return -1;
}

int CsvTable::require(const std::string& name) const {
  const int i = column(name);
  if (i >= 0) return i;
  std::string names;
  for (const auto& h : header) names += (names.empty() ? "" : ",") + h;
  throw DataError(path + ": no column '" + name + "' (columns: " + names + ")");
}

std::string CsvTable::where(const Row& row) const { return path + ":" + std::to_string(row.line); }

std::vector<std::string> split_csv_line(const std::string& line, const std::string& where) {
  std::vector<std::string> fields;
  std::string cur;
  bool quoted = false, was_quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          cur += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        cur += c;
      }
    } else if (was_quoted && c != ',') {  // after a closing quote: blanks, then the comma
      if (c != ' ' && c != '\t')
        throw DataError(where + ": text after the closing quote of field " + std::to_string(fields.size() + 1));
    } else if (c == '"' && trim(cur).empty()) {
      quoted = true;
      was_quoted = true;
      cur.clear();
    } else if (c == ',') {
      fields.push_back(was_quoted ? cur : trim(cur));
      cur.clear();
      was_quoted = false;
    } else {
      cur += c;
    }
  }
  if (quoted) throw DataError(where + ": unterminated quoted field");
  fields.push_back(was_quoted ? cur : trim(cur));
  return fields;
}

std::string quote_csv(const std::string& field) {
  if (field.find_first_of(",\"") == std::string::npos && trim(field) == field) return field;
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

CsvTable read_csv(const std::string& path, const std::vector<std::string>& required) {
  CsvTable table;
  table.path = path;
  const auto lines = read_lines(path, table.content_hash);
  bool have_header = false;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto line_no = static_cast<std::int64_t>(i + 1);
    if (trim(lines[i]).empty()) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    auto fields = split_csv_line(lines[i], where);
    if (!have_header) {
      table.header = std::move(fields);
      have_header = true;
      for (const auto& name : required)
        if (table.column(name) < 0) {
          std::string need, got;
          for (const auto& r : required) need += (need.empty() ? "" : ", ") + r;
          for (const auto& h : table.header) got += (got.empty() ? "" : ",") + h;
          throw DataError(where + ": the header needs columns " + need + "; got '" + got + "'");
        }
      continue;
    }
    if (fields.size() != table.header.size())
      throw DataError(where + ": expected " + std::to_string(table.header.size()) + " fields, got " +
                      std::to_string(fields.size()));
    table.rows.push_back({line_no, std::move(fields)});
  }
  if (!have_header) throw DataError(path + ":1: empty file (no header line)");
  return table;
}

void write_file_atomically(const std::string& path, const std::string& text, const std::string& what) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  {
    errno = 0;
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw StoreError(what + ": cannot write " + tmp + ": " + std::strerror(errno));
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) {
      const std::string why = errno != 0 ? std::strerror(errno) : "write failed";
      std::filesystem::remove(tmp, ec);
      throw StoreError(what + ": " + why + " (" + tmp + ")");
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw StoreError(what + ": cannot rename " + tmp + " to " + path + ": " + ec.message());
  }
}

}  // namespace dne::data
