// Comma-separated tables as data sets ship them (manifests, CheXpert / MIMIC-CXR / NIH metadata).
//
// RFC 4180 style fields: double quotes group (a comma inside quotes is text, "" is a quote),
// whitespace around unquoted fields and around a quoted field's quotes is dropped (text other than
// blanks between a closing quote and the next comma is an error); a UTF-8 byte-order mark, CRLF line ends and blank
// lines are accepted; a file whose name ends in ".gz" is read through zlib (MIMIC-CXR ships its
// tables gzip-compressed). A quoted field may not span lines. Every error names the file and, for
// row problems, the 1-based line number, so a user can fix the offending row directly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dne::data {

/// A CSV file read whole: its header and its rows (every row has header.size() fields).
struct CsvTable {
  struct Row {
    std::int64_t line = 0;            // 1-based line number in the file
    std::vector<std::string> fields;  // (header.size(),)
  };
  std::string path;
  std::string content_hash;  // FNV-1a-64 (hex) of the bytes parsed (after gunzip): what the rows came from
  std::vector<std::string> header;
  std::vector<Row> rows;

  /// Index of the column named `name` (exact match), or -1.
  int column(const std::string& name) const;
  /// Index of the column named `name`; throws dne::DataError "<path>: no column '<name>' (columns:
  /// ...)" when there is none.
  int require(const std::string& name) const;
  /// "<path>:<line>", for messages about one row.
  std::string where(const Row& row) const;
};

/// Splits one CSV line into its fields. Throws dne::DataError "<where>: unterminated quoted field"
/// or "<where>: text after the closing quote of field K".
std::vector<std::string> split_csv_line(const std::string& line, const std::string& where);

/// `field` as a CSV field: quoted (with "" for ") only when it holds a comma, a quote or
/// surrounding whitespace.
std::string quote_csv(const std::string& field);

/// Reads the CSV at `path` (plain, or gzip when the name ends in ".gz"). Throws dne::DataError
/// "<path>: cannot open ..." if it cannot be read, "<path>:1: empty file" without a header,
/// "<path>:1: the header needs columns ..." when a column of `required` is missing (checked
/// before any row), and "<path>:<line>: expected N fields, got M" for a row whose field count
/// differs from the header's.
CsvTable read_csv(const std::string& path, const std::vector<std::string>& required = {});

/// Writes `text` to `path` atomically: to "<path>.tmp.<pid>", closed and checked, then renamed,
/// so a reader sees the old file or the whole new one, never a part. The temporary file is
/// removed on failure. Throws dne::StoreError "<what>: ..." if it cannot be written or renamed.
void write_file_atomically(const std::string& path, const std::string& text, const std::string& what);

}  // namespace dne::data
