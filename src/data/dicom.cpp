// DICOM decoding through GDCM (see dicom.hpp): GDCM parses the file and decodes the pixel data of
// every transfer syntax it supports into a native-endian buffer of BitsAllocated samples; this file
// extracts the stored values, applies rescale and the VOI window (read from the data set directly:
// GDCM's own Image::GetSlope/GetIntercept are applied only for some SOP classes), normalises to
// [0, 1] and flips MONOCHROME1. GDCM headers are SYSTEM includes (see CMakeLists.txt: gdcmMSFF).
#include "dne/data/dicom.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <optional>
#include <string_view>

#include "dne/core/errors.hpp"

#include <gdcmTrace.h>
#include <gdcmDataSet.h>
#include <gdcmFile.h>
#include <gdcmImage.h>
#include <gdcmImageReader.h>
#include <gdcmPhotometricInterpretation.h>
#include <gdcmPixelFormat.h>
#include <gdcmTag.h>
#include <gdcmTransferSyntax.h>

namespace dne::data {
namespace {

constexpr std::int64_t kMaxSide = 1 << 15;  // same limit as image_io (32768 pixels per side)

[[noreturn]] void fail(const std::string& path, const std::string& reason) {
  throw DataError("DICOM file '" + path + "': " + reason);
}

// The raw text of a data element, or nullopt when it is absent or empty.
std::optional<std::string> element_text(const gdcm::DataSet& ds, std::uint16_t group,
                                        std::uint16_t element) {
  const gdcm::Tag tag(group, element);
  if (!ds.FindDataElement(tag)) return std::nullopt;
  const gdcm::ByteValue* bv = ds.GetDataElement(tag).GetByteValue();
  if (bv == nullptr || bv->GetPointer() == nullptr) return std::nullopt;
  std::string s(bv->GetPointer(), static_cast<std::uint32_t>(bv->GetLength()));
  return s;
}

// First value of a decimal string (DS, values separated by '\', padded with spaces or NUL), or
// nullopt when the element is absent or empty. Throws DataError for text that is not a number.
std::optional<double> first_decimal(const std::string& path, const gdcm::DataSet& ds,
                                    std::uint16_t group, std::uint16_t element, const char* name) {
  const auto text = element_text(ds, group, element);
  if (!text) return std::nullopt;
  std::string v = text->substr(0, text->find('\\'));
  const auto not_pad = [](char c) { return c != ' ' && c != '\0'; };
  v.erase(v.begin(), std::find_if(v.begin(), v.end(), not_pad));
  v.erase(std::find_if(v.rbegin(), v.rend(), not_pad).base(), v.end());
  if (v.empty()) return std::nullopt;
  const char* first = v.data() + (v[0] == '+' ? 1 : 0);  // from_chars rejects a leading '+'
  const char* last = v.data() + v.size();
  double out = 0.0;
  const auto [end, ec] = std::from_chars(first, last, out);
  if (ec != std::errc() || end != last || !std::isfinite(out)) {
    fail(path, std::string("unparsable ") + name + " '" + v + "'");
  }
  return out;
}

// Stored values of a decoded native-endian buffer of BitsAllocated (8, 16, 32) samples: the
// BitsStored bits ending at HighBit, two's complement when PixelRepresentation is 1.
class StoredValues {
 public:
  StoredValues(const std::string& path, const std::vector<char>& buf, const gdcm::PixelFormat& pf,
               std::size_t count)
      : buf_(buf), bytes_(pf.GetBitsAllocated() / 8U), stored_(pf.GetBitsStored()),
        signed_(pf.GetPixelRepresentation() == 1) {
    const unsigned allocated = pf.GetBitsAllocated(), high = pf.GetHighBit();
    if (allocated != 8 && allocated != 16 && allocated != 32) {
      fail(path, "unsupported BitsAllocated " + std::to_string(allocated) + " (8, 16 or 32)");
    }
    if (stored_ < 1 || stored_ > allocated || high + 1 < stored_ || high >= allocated) {
      fail(path, "inconsistent BitsStored " + std::to_string(stored_) + " / HighBit " +
                     std::to_string(high) + " for BitsAllocated " + std::to_string(allocated));
    }
    if (buf.size() < count * bytes_) {
      fail(path, "decoded pixel data holds " + std::to_string(buf.size()) + " bytes, " +
                     std::to_string(count * bytes_) + " expected");
    }
    shift_ = high + 1 - stored_;
    mask_ = (std::uint64_t{1} << stored_) - 1;
  }

  std::int64_t operator[](std::size_t i) const {
    std::uint64_t raw = 0;
    if (bytes_ == 1) {
      raw = static_cast<unsigned char>(buf_[i]);
    } else if (bytes_ == 2) {
      std::uint16_t v;
      std::memcpy(&v, buf_.data() + 2 * i, 2);  // GDCM decodes to native byte order
      raw = v;
    } else {
      std::uint32_t v;
      std::memcpy(&v, buf_.data() + 4 * i, 4);
      raw = v;
    }
    const std::uint64_t bits = (raw >> shift_) & mask_;
    auto value = static_cast<std::int64_t>(bits);
    if (signed_ && ((bits >> (stored_ - 1)) & 1U) != 0) {
      value -= static_cast<std::int64_t>(std::uint64_t{1} << stored_);
    }
    return value;
  }

 private:
  const std::vector<char>& buf_;
  std::size_t bytes_;
  unsigned stored_;
  bool signed_;
  unsigned shift_ = 0;
  std::uint64_t mask_ = 0;
};

// The linear VOI function of PS3.3 C.11.2.1.2.1 with output range [0, 1] (w >= 1).
double voi_linear(double x, double c, double w) {
  const double lo = c - 0.5 - (w - 1.0) / 2.0;
  const double hi = c - 0.5 + (w - 1.0) / 2.0;
  if (x <= lo) return 0.0;
  if (x > hi) return 1.0;
  return (x - (c - 0.5)) / (w - 1.0) + 0.5;  // only reached when w > 1
}

// Walks the element structure of a Part-10 file (headers only, values skipped) and throws
// DataError when a header is cut or a declared length runs past the end of the file. Debian's GDCM
// is built with assertions: most truncated files abort the whole process inside GDCM, and a file
// cut inside native pixel data decodes with the missing pixels as zeros. Walked: the explicit VR
// little endian meta group, then the data set in implicit VR little endian, explicit VR big endian
// or (every other transfer syntax) explicit VR little endian, through undefined-length sequences
// and items (undefined-length UN content is implicit VR little endian) and encapsulated pixel
// fragments. A deflated data set (1.2.840.10008.1.2.1.99) is left to GDCM unwalked.
class StructureWalker {
 public:
  StructureWalker(const std::string& path, std::ifstream& in, std::uint64_t size)
      : path_(path), in_(in), size_(size) {}

  // Returns the transfer syntax UID; throws DataError for one not in kSupported.
  std::string run() {
    seek(132);  // preamble + "DICM"
    const std::string ts = meta();
    if (std::find(kSupported.begin(), kSupported.end(), ts) == kSupported.end()) {
      fail(path_, "unsupported transfer syntax " + ts +
                      " (native little/big endian, deflate, RLE, JPEG, JPEG-LS, JPEG 2000)");
    }
    if (ts == "1.2.840.10008.1.2.1.99") return ts;
    const bool implicit = ts == "1.2.840.10008.1.2";
    const bool big_endian = ts == "1.2.840.10008.1.2.2";
    dataset(implicit, big_endian, 0, false);
    if (!pixel_data_) fail(path_, "no Pixel Data element (7FE0,0010) (truncated?)");
    return ts;
  }

 private:
  static constexpr std::uint32_t kUndefined = 0xFFFFFFFFU;
  // Transfer syntaxes GDCM decodes (its video, JPIP and private ones are not: GDCM can crash on
  // an unknown one, and those are never single-frame radiographs).
  static constexpr std::array<std::string_view, 18> kSupported = {
      "1.2.840.10008.1.2",       "1.2.840.10008.1.2.1",    "1.2.840.10008.1.2.1.99",
      "1.2.840.10008.1.2.2",     "1.2.840.10008.1.2.5",    "1.2.840.10008.1.2.4.50",
      "1.2.840.10008.1.2.4.51",  "1.2.840.10008.1.2.4.52", "1.2.840.10008.1.2.4.53",
      "1.2.840.10008.1.2.4.55",  "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
      "1.2.840.10008.1.2.4.80",  "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90",
      "1.2.840.10008.1.2.4.91",  "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93",
  };
  static constexpr int kMaxDepth = 32;

  [[noreturn]] void cut(const std::string& what) const {
    fail(path_, "truncated or malformed: " + what + " (the file has " + std::to_string(size_) +
                    " bytes)");
  }
  void seek(std::uint64_t pos) {
    if (pos > size_) cut("data past the end of the file");
    pos_ = pos;
    in_.seekg(static_cast<std::streamoff>(pos));
  }
  void read(char* dst, std::uint64_t n) {
    if (pos_ + n > size_) {
      cut("the file ends inside an element header at byte " + std::to_string(pos_));
    }
    in_.read(dst, static_cast<std::streamsize>(n));
    if (!in_) fail(path_, "read error at byte " + std::to_string(pos_));
    pos_ += n;
  }
  std::uint16_t u16(bool be) {
    unsigned char b[2];
    read(reinterpret_cast<char*>(b), 2);
    return static_cast<std::uint16_t>(be ? (b[0] << 8) | b[1] : (b[1] << 8) | b[0]);
  }
  std::uint32_t u32(bool be) {
    const std::uint32_t a = u16(be), b = u16(be);
    return be ? (a << 16) | b : (b << 16) | a;
  }
  static std::string tag_text(std::uint16_t g, std::uint16_t e) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "(%04X,%04X)", g, e);
    return buf;
  }
  void skip_value(std::uint16_t g, std::uint16_t e, std::uint32_t len) {
    if (pos_ + len > size_) {
      cut("element " + tag_text(g, e) + " at byte " + std::to_string(pos_) + " declares " +
          std::to_string(len) + " bytes, " + std::to_string(size_ - pos_) + " remain");
    }
    seek(pos_ + len);
  }
  // VR (2 letters) and value length of an explicit-VR element whose tag was just read.
  std::uint32_t explicit_length(bool be, std::string& vr) {
    char v[2];
    read(v, 2);
    if (v[0] < 'A' || v[0] > 'Z' || v[1] < 'A' || v[1] > 'Z') {
      fail(path_, "malformed: no explicit VR at byte " + std::to_string(pos_ - 2));
    }
    vr.assign(v, 2);
    static const std::array<const char*, 13> kLong = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                                      "SV", "UC", "UN", "UR", "UT", "UV"};
    const bool long_form = std::any_of(kLong.begin(), kLong.end(),
                                       [&](const char* l) { return vr == l; });
    if (!long_form) return u16(be);
    u16(be);  // reserved
    return u32(be);
  }
  // The file meta information (group 0002, explicit VR little endian); returns the transfer
  // syntax UID without padding.
  std::string meta() {
    std::string ts;
    while (true) {
      if (pos_ == size_) cut("no data set after the file meta information");
      const std::uint64_t start = pos_;
      const std::uint16_t g = u16(false);
      if (g != 0x0002) {
        seek(start);
        break;
      }
      const std::uint16_t e = u16(false);
      std::string vr;
      const std::uint32_t len = explicit_length(false, vr);
      if (len == kUndefined) {
        fail(path_, "malformed: undefined length in the file meta information");
      }
      if (e == 0x0010) {
        if (pos_ + len > size_) skip_value(g, e, len);
        ts.resize(len);
        read(ts.data(), len);
        while (!ts.empty() && (ts.back() == '\0' || ts.back() == ' ')) ts.pop_back();
      } else {
        skip_value(g, e, len);
      }
    }
    if (ts.empty()) fail(path_, "no TransferSyntaxUID (0002,0010) in the file meta information");
    return ts;
  }
  // Elements up to the end of the file (top level) or up to an item delimiter (in an item).
  void dataset(bool implicit, bool be, int depth, bool in_item) {
    if (depth > kMaxDepth) fail(path_, "malformed: sequences nested too deep");
    while (true) {
      if (!in_item && pos_ == size_) return;
      const std::uint16_t g = u16(be), e = u16(be);
      if (g == 0xFFFE) {
        if (in_item && e == 0xE00D) {
          u32(be);
          return;
        }
        fail(path_, "malformed: unexpected " + tag_text(g, e) + " at byte " +
                        std::to_string(pos_ - 4));
      }
      std::string vr;
      const std::uint32_t len = implicit ? u32(be) : explicit_length(be, vr);
      const bool pixels = depth == 0 && g == 0x7FE0 && e == 0x0010;
      if (len == kUndefined) {
        if (pixels) {
          items(implicit, be, depth, true);
        } else if (vr == "UN") {
          items(true, false, depth + 1, false);  // PS3.5 6.2.2: implicit VR little endian
        } else {
          items(implicit, be, depth + 1, false);
        }
      } else {
        skip_value(g, e, len);
      }
      pixel_data_ = pixel_data_ || pixels;
    }
  }
  // Items of an undefined-length sequence (or pixel fragments) up to the sequence delimiter.
  void items(bool implicit, bool be, int depth, bool fragments) {
    while (true) {
      const std::uint16_t g = u16(be), e = u16(be);
      const std::uint32_t len = u32(be);
      if (g == 0xFFFE && e == 0xE0DD) return;
      if (g != 0xFFFE || e != 0xE000) {
        fail(path_, "malformed: " + tag_text(g, e) + " where an item was expected at byte " +
                        std::to_string(pos_ - 8));
      }
      if (len != kUndefined) {
        skip_value(g, e, len);
      } else if (fragments) {
        fail(path_, "malformed: undefined-length pixel data fragment");
      } else {
        dataset(implicit, be, depth, true);
      }
    }
  }

  const std::string& path_;
  std::ifstream& in_;
  std::uint64_t size_;
  std::uint64_t pos_ = 0;
  bool pixel_data_ = false;
};

}  // namespace

bool is_dicom(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::array<char, 132> head{};
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  if (in.gcount() != static_cast<std::streamsize>(head.size())) return false;
  return std::memcmp(head.data() + 128, "DICM", 4) == 0;
}

std::vector<float> read_dicom(const std::string& path, std::int64_t& height,
                              std::int64_t& width, std::int64_t max_pixels) {
  std::string ts_uid;
  {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) fail(path, "cannot open the file");
    const auto size = static_cast<std::uint64_t>(in.tellg());
    if (!is_dicom(path)) fail(path, "not a DICOM file (no \"DICM\" magic at byte 128)");
    ts_uid = StructureWalker(path, in, size).run();  // before GDCM: it asserts on truncation
  }
  try {
    gdcm::ImageReader reader;
    reader.SetFileName(path.c_str());
    if (!reader.Read()) fail(path, "GDCM cannot parse it as an image (truncated or malformed?)");
    const gdcm::Image& image = reader.GetImage();
    const gdcm::DataSet& ds = reader.GetFile().GetDataSet();
    const gdcm::PixelFormat& pf = image.GetPixelFormat();

    if (pf.GetSamplesPerPixel() != 1) {
      fail(path, "colour image (SamplesPerPixel " + std::to_string(pf.GetSamplesPerPixel()) +
                     "), only grayscale is supported");
    }
    const auto pi = image.GetPhotometricInterpretation().GetType();
    if (pi != gdcm::PhotometricInterpretation::MONOCHROME1 &&
        pi != gdcm::PhotometricInterpretation::MONOCHROME2) {
      const char* name = image.GetPhotometricInterpretation().GetString();
      fail(path, std::string("colour or unsupported PhotometricInterpretation '") +
                     (name != nullptr ? name : "?") + "', only MONOCHROME1/2 are supported");
    }
    const unsigned dims = image.GetNumberOfDimensions();
    if (dims == 3 && image.GetDimension(2) > 1) {
      fail(path, "multi-frame (" + std::to_string(image.GetDimension(2)) +
                     " frames), only single-frame images are supported");
    }
    const std::int64_t rows = image.GetRows(), cols = image.GetColumns();
    if (rows < 1 || cols < 1 || rows > kMaxSide || cols > kMaxSide) {
      fail(path, "image size " + std::to_string(rows) + "x" + std::to_string(cols) +
                     " must be in [1, " + std::to_string(kMaxSide) + "]");
    }
    if (rows * cols > max_pixels)
      fail(path, "Rows x Columns " + std::to_string(rows) + "x" + std::to_string(cols) + " = " +
                     std::to_string(rows * cols) + " pixels, over data.max_pixels = " + std::to_string(max_pixels) +
                     " (not decoded)");

    std::vector<char> buf(image.GetBufferLength());
    if (!image.GetTransferSyntax().IsEncapsulated()) {  // native: GDCM pads short data with zeros
      const gdcm::ByteValue* bv = ds.GetDataElement(gdcm::Tag(0x7FE0, 0x0010)).GetByteValue();
      const std::size_t have = bv != nullptr ? static_cast<std::uint32_t>(bv->GetLength()) : 0;
      if (have < buf.size()) {
        fail(path, "Pixel Data holds " + std::to_string(have) + " bytes, " +
                       std::to_string(buf.size()) + " expected for " + std::to_string(rows) +
                       "x" + std::to_string(cols) + " pixels");
      }
    }
    if (!image.GetBuffer(buf.data())) {
      fail(path, "GDCM cannot decode the pixel data (transfer syntax " + ts_uid +
                     "; corrupt, or a variant GDCM does not support)");
    }
    const auto count = static_cast<std::size_t>(rows * cols);
    const StoredValues stored(path, buf, pf, count);

    const double slope = first_decimal(path, ds, 0x0028, 0x1053, "RescaleSlope").value_or(1.0);
    const double intercept =
        first_decimal(path, ds, 0x0028, 0x1052, "RescaleIntercept").value_or(0.0);
    const auto centre = first_decimal(path, ds, 0x0028, 0x1050, "WindowCenter");
    const auto win = first_decimal(path, ds, 0x0028, 0x1051, "WindowWidth");
    const auto modality = [&](std::size_t i) {
      return static_cast<double>(stored[i]) * slope + intercept;
    };

    // VOI: the window when there is a usable one, else min-max; MONOCHROME1 flipped afterwards
    const bool windowed = centre && win && *win >= 1.0;
    double lo = 0.0, range = 0.0;
    if (!windowed) {
      lo = modality(0);
      double hi = lo;
      for (std::size_t i = 1; i < count; ++i) {
        const double m = modality(i);
        lo = std::min(lo, m);
        hi = std::max(hi, m);
      }
      range = hi - lo;
    }
    const bool flip = pi == gdcm::PhotometricInterpretation::MONOCHROME1;
    std::vector<float> out(count);  // (rows, cols) row-major
    for (std::size_t i = 0; i < count; ++i) {
      double v = 0.0;
      if (windowed) {
        v = voi_linear(modality(i), *centre, *win);
      } else if (range > 0.0) {
        v = (modality(i) - lo) / range;
      }
      out[i] = static_cast<float>(flip ? 1.0 - v : v);
    }
    height = rows;
    width = cols;
    return out;
  } catch (const dne::Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(path, std::string("GDCM failed: ") + e.what());
  }
}

void silence_dicom_library_messages() {
  gdcm::Trace::WarningOff();
  gdcm::Trace::DebugOff();
}

}  // namespace dne::data
