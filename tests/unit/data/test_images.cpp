// Unit tests for DICOM decoding (dicom.hpp, through GDCM) and square fitting (image_io.hpp:
// fit_square, parse_resize_mode).
//
// The DICOM files are built byte by byte by a minimal writer in this file (explicit VR little
// endian Part-10: 128-byte preamble, "DICM", group 0002 meta, group 0028 image pixel attributes,
// (7FE0,0010) OW pixel data), independent of GDCM. Every expected value is computed by hand in the
// comments (min-max, the PS3.3 C.11.2.1.2.1 linear window, two's complement of 12-bit samples,
// MONOCHROME1 inversion); the compressed transfer syntaxes (RLE, JPEG lossless, JPEG-LS,
// JPEG 2000, deflate, implicit VR, big endian) are those files re-encoded by GDCM's own encoders
// and must decode to the same hand-computed values. So are the fit_square layouts (crop keeps the
// middle, pad centres on black, odd excess to the bottom/right) and the 2x-shrink values of the
// anti-aliased filter.
// 16-bit PNG scaling (1/65535) is tested in test_data.cpp (ImageIo.Reads16BitGrayscale).
#include <gtest/gtest.h>
#include <gdcmTrace.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/data/dicom.hpp"
#include "dne/data/image_io.hpp"
#include "test_support.hpp"

#include <gdcmImageChangeTransferSyntax.h>
#include <gdcmImageReader.h>
#include <gdcmImageWriter.h>
#include <gdcmTransferSyntax.h>

namespace dd = dne::data;
namespace fs = std::filesystem;

namespace {

using dne_test::expect_error;

// ------------------------------------------------------------------------------------------------
// a minimal DICOM Part-10 writer (explicit VR little endian)

struct DicomSpec {
  std::string photometric = "MONOCHROME2";
  std::uint16_t rows = 1, cols = 1;
  std::uint16_t samples_per_pixel = 1;
  std::uint16_t bits_stored = 16, high_bit = 15, pixel_representation = 0;
  std::optional<std::string> frames;                            // (0028,0008) IS
  std::optional<std::string> window_center, window_width;       // (0028,1050/1051) DS
  std::optional<std::string> rescale_intercept, rescale_slope;  // (0028,1052/1053) DS
  std::vector<std::uint16_t> words;                             // raw 16-bit samples, row-major
  std::string transfer_syntax = "1.2.840.10008.1.2.1";
};

class ByteWriter {
 public:
  void u16(std::uint16_t v) {
    bytes_.push_back(static_cast<char>(v & 0xFF));
    bytes_.push_back(static_cast<char>(v >> 8));
  }
  void u32(std::uint32_t v) {
    u16(static_cast<std::uint16_t>(v & 0xFFFF));
    u16(static_cast<std::uint16_t>(v >> 16));
  }
  void raw(const std::string& s) { bytes_ += s; }
  // One explicit-VR element; strings are padded to even length (UI with NUL, others with space).
  void element(std::uint16_t group, std::uint16_t elem, const char* vr, std::string value) {
    const std::string v(vr);
    if (value.size() % 2 == 1) value.push_back(v == "UI" || v == "OB" ? '\0' : ' ');
    u16(group);
    u16(elem);
    raw(v);
    if (v == "OB" || v == "OW" || v == "UN" || v == "SQ" || v == "UT") {
      u16(0);
      u32(static_cast<std::uint32_t>(value.size()));
    } else {
      u16(static_cast<std::uint16_t>(value.size()));
    }
    raw(value);
  }
  void us(std::uint16_t group, std::uint16_t elem, std::uint16_t value) {
    std::string v;
    v.push_back(static_cast<char>(value & 0xFF));
    v.push_back(static_cast<char>(value >> 8));
    element(group, elem, "US", v);
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

std::string dicom_bytes(const DicomSpec& s) {
  ByteWriter meta;  // group 0002 after its group length
  meta.element(0x0002, 0x0001, "OB", std::string("\0\1", 2));
  meta.element(0x0002, 0x0002, "UI", "1.2.840.10008.5.1.4.1.1.1.1");  // Digital X-Ray Image
  meta.element(0x0002, 0x0003, "UI", "1.2.826.0.1.3680043.2.1125.1");
  meta.element(0x0002, 0x0010, "UI", s.transfer_syntax);
  ByteWriter ds;
  ds.us(0x0028, 0x0002, s.samples_per_pixel);
  ds.element(0x0028, 0x0004, "CS", s.photometric);
  if (s.samples_per_pixel > 1) ds.us(0x0028, 0x0006, 0);  // PlanarConfiguration
  if (s.frames) ds.element(0x0028, 0x0008, "IS", *s.frames);
  ds.us(0x0028, 0x0010, s.rows);
  ds.us(0x0028, 0x0011, s.cols);
  ds.us(0x0028, 0x0100, 16);
  ds.us(0x0028, 0x0101, s.bits_stored);
  ds.us(0x0028, 0x0102, s.high_bit);
  ds.us(0x0028, 0x0103, s.pixel_representation);
  if (s.window_center) ds.element(0x0028, 0x1050, "DS", *s.window_center);
  if (s.window_width) ds.element(0x0028, 0x1051, "DS", *s.window_width);
  if (s.rescale_intercept) ds.element(0x0028, 0x1052, "DS", *s.rescale_intercept);
  if (s.rescale_slope) ds.element(0x0028, 0x1053, "DS", *s.rescale_slope);
  ByteWriter px;
  for (std::uint16_t w : s.words) px.u16(w);
  ds.element(0x7FE0, 0x0010, "OW", px.bytes());

  ByteWriter file;
  file.raw(std::string(128, '\0'));
  file.raw("DICM");
  ByteWriter len;
  len.u32(static_cast<std::uint32_t>(meta.bytes().size()));
  file.element(0x0002, 0x0000, "UL", len.bytes());
  file.raw(meta.bytes());
  file.raw(ds.bytes());
  return file.bytes();
}

class Dicom : public dne_test::TempDirTest {
 protected:
  std::string write(const std::string& rel, const std::string& bytes) const {
    std::ofstream out(dir_ / rel, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path(rel);
  }
  std::string write(const std::string& rel, const DicomSpec& spec) const {
    return write(rel, dicom_bytes(spec));
  }
};

// 2 x 3 unsigned 16-bit image with stored values 100, 200, ..., 600 (row-major).
DicomSpec ramp_2x3() {
  DicomSpec s;
  s.rows = 2;
  s.cols = 3;
  s.words = {100, 200, 300, 400, 500, 600};
  return s;
}

// ------------------------------------------------------------------------------------------------
// DICOM

TEST_F(Dicom, Monochrome2MinMax) {
  const std::string p = write("m2.dcm", ramp_2x3());
  EXPECT_TRUE(dd::is_dicom(p));
  std::int64_t h = 0, w = 0;
  const auto im = dd::read_dicom(p, h, w);
  ASSERT_EQ(h, 2);
  ASSERT_EQ(w, 3);
  // (s - 100) / 500
  const std::vector<float> expected = {0.f, 0.2f, 0.4f, 0.6f, 0.8f, 1.f};
  ASSERT_EQ(im.size(), expected.size());
  for (std::size_t i = 0; i < im.size(); ++i) EXPECT_FLOAT_EQ(im[i], expected[i]) << i;
}

TEST_F(Dicom, Monochrome1IsInvertedToTheRightPolarity) {
  // MONOCHROME1: the lowest stored value is displayed white, so after the flip it is 1.0 and the
  // highest is 0.0: 1 - (s - 100) / 500
  DicomSpec s = ramp_2x3();
  s.photometric = "MONOCHROME1";
  std::int64_t h = 0, w = 0;
  const auto im = dd::read_dicom(write("m1.dcm", s), h, w);
  ASSERT_EQ(h, 2);
  ASSERT_EQ(w, 3);
  const std::vector<float> expected = {1.f, 0.8f, 0.6f, 0.4f, 0.2f, 0.f};
  for (std::size_t i = 0; i < im.size(); ++i) EXPECT_FLOAT_EQ(im[i], expected[i]) << i;
  EXPECT_EQ(im[0], 1.f);  // lowest stored value (100)
  EXPECT_EQ(im[5], 0.f);  // highest stored value (600)
}

TEST_F(Dicom, RescaleThenFirstWindowPair) {
  // stored 0, 10, ..., 50; slope 2, intercept -100 -> modality -100, -80, -60, -40, -20, 0.
  // First window pair c = -50, w = 41 (the second pair 0 / 100 must be ignored):
  // lo = c - 0.5 - (w - 1) / 2 = -70.5, hi = c - 0.5 + (w - 1) / 2 = -30.5;
  // -100, -80 <= lo -> 0; -60 -> (-60 + 50.5) / 40 + 0.5 = 0.2625;
  // -40 -> (-40 + 50.5) / 40 + 0.5 = 0.7625; -20, 0 > hi -> 1.
  DicomSpec s;
  s.rows = 3;
  s.cols = 2;
  s.words = {0, 10, 20, 30, 40, 50};
  s.rescale_slope = "2";
  s.rescale_intercept = "-100";
  s.window_center = "-50\\0";
  s.window_width = "41\\100";
  std::int64_t h = 0, w = 0;
  const auto im = dd::read_dicom(write("win.dcm", s), h, w);
  ASSERT_EQ(h, 3);
  ASSERT_EQ(w, 2);
  const std::vector<float> expected = {0.f, 0.f, 0.2625f, 0.7625f, 1.f, 1.f};
  for (std::size_t i = 0; i < im.size(); ++i) EXPECT_FLOAT_EQ(im[i], expected[i]) << i;
}

TEST_F(Dicom, WindowOnMonochrome1AndWidthOne) {
  // w = 1: a threshold at c - 0.5: modality <= 4.5 -> 0, > 4.5 -> 1; then MONOCHROME1 flips.
  DicomSpec s;
  s.rows = 1;
  s.cols = 4;
  s.photometric = "MONOCHROME1";
  s.words = {3, 4, 5, 6};
  s.window_center = " +5 ";  // DS allows a sign and padding
  s.window_width = "1";
  std::int64_t h = 0, w = 0;
  const auto im = dd::read_dicom(write("w1.dcm", s), h, w);
  const std::vector<float> expected = {1.f, 1.f, 0.f, 0.f};
  EXPECT_EQ(im, expected);
}

TEST_F(Dicom, RescaleWithoutWindowIsMinMaxOfModalityValues) {
  // slope -1 reverses the order: modality = -s + 7 -> 6, 5, 4, 3 -> (m - 3) / 3
  DicomSpec s;
  s.rows = 2;
  s.cols = 2;
  s.words = {1, 2, 3, 4};
  s.rescale_slope = "-1.0";
  s.rescale_intercept = "7";
  std::int64_t h = 0, w = 0;
  const auto im = dd::read_dicom(write("rs.dcm", s), h, w);
  const std::vector<float> expected = {1.f, 2.f / 3.f, 1.f / 3.f, 0.f};
  for (std::size_t i = 0; i < im.size(); ++i) EXPECT_FLOAT_EQ(im[i], expected[i]) << i;
}

TEST_F(Dicom, SignedTwelveBitPixels) {
  // BitsStored 12, HighBit 11, PixelRepresentation 1: 12-bit two's complement.
  // 0x800 = -2048, 0xFFF = -1, 0x000 = 0, 0x7FF = 2047; min-max: (s + 2048) / 4095.
  // The last two words carry garbage above the high bit (0xA000, 0x5000) that must be ignored.
  DicomSpec s;
  s.rows = 2;
  s.cols = 2;
  s.bits_stored = 12;
  s.high_bit = 11;
  s.pixel_representation = 1;
  s.words = {0x0800, 0x0FFF, 0xA000, 0x57FF};
  std::int64_t h = 0, w = 0;
  const auto im = dd::read_dicom(write("signed.dcm", s), h, w);
  ASSERT_EQ(im.size(), 4U);
  EXPECT_FLOAT_EQ(im[0], 0.f);
  EXPECT_FLOAT_EQ(im[1], 2047.f / 4095.f);
  EXPECT_FLOAT_EQ(im[2], 2048.f / 4095.f);
  EXPECT_FLOAT_EQ(im[3], 1.f);
}

TEST_F(Dicom, SignedSixteenBitWithWindow) {
  // 16-bit signed: 0x8000 = -32768, 0xFFFF = -1, 0x0001 = 1, 0x7FFF = 32767; window c = 0.5,
  // w = 4: lo = -2, hi = 1 -> -32768 -> 0, -1 -> (-1 - 0) / 3 + 0.5 = 1/6, 1 -> 1/3 + 0.5 = 5/6,
  // 32767 -> 1
  DicomSpec s;
  s.rows = 1;
  s.cols = 4;
  s.pixel_representation = 1;
  s.words = {0x8000, 0xFFFF, 0x0001, 0x7FFF};
  s.window_center = "0.5";
  s.window_width = "4";
  std::int64_t h = 0, w = 0;
  const auto im = dd::read_dicom(write("s16.dcm", s), h, w);
  ASSERT_EQ(im.size(), 4U);
  EXPECT_FLOAT_EQ(im[0], 0.f);
  EXPECT_FLOAT_EQ(im[1], 1.f / 6.f);
  EXPECT_FLOAT_EQ(im[2], 5.f / 6.f);
  EXPECT_FLOAT_EQ(im[3], 1.f);
}

TEST_F(Dicom, UnsignedTwelveBitIgnoresBitsAboveHighBit) {
  // stored 0, 4095, 2048 with overlay-like garbage in bits 12..15 of the last two
  DicomSpec s;
  s.rows = 1;
  s.cols = 3;
  s.bits_stored = 12;
  s.high_bit = 11;
  s.words = {0x0000, 0xFFFF, 0x3800};
  std::int64_t h = 0, w = 0;
  const auto im = dd::read_dicom(write("u12.dcm", s), h, w);
  ASSERT_EQ(im.size(), 3U);
  EXPECT_FLOAT_EQ(im[0], 0.f);
  EXPECT_FLOAT_EQ(im[1], 1.f);
  EXPECT_FLOAT_EQ(im[2], 2048.f / 4095.f);
}

TEST_F(Dicom, ConstantImage) {
  // min-max of a constant image is 0 everywhere; MONOCHROME1 then flips it to 1
  DicomSpec s;
  s.rows = 2;
  s.cols = 2;
  s.words = {7, 7, 7, 7};
  std::int64_t h = 0, w = 0;
  EXPECT_EQ(dd::read_dicom(write("c2.dcm", s), h, w), std::vector<float>(4, 0.f));
  s.photometric = "MONOCHROME1";
  EXPECT_EQ(dd::read_dicom(write("c1.dcm", s), h, w), std::vector<float>(4, 1.f));
}

TEST_F(Dicom, IsDicomOnlyWithTheMagic) {
  const std::vector<float> im = {0.f, 1.f, 0.5f, 0.25f};
  dd::write_grayscale_png(path("a.png"), im.data(), 2, 2);
  EXPECT_FALSE(dd::is_dicom(path("a.png")));
  EXPECT_FALSE(dd::is_dicom(path("missing.dcm")));
  EXPECT_FALSE(dd::is_dicom(write("short.dcm", std::string(131, '\0'))));
  std::string wrong_offset = std::string(127, '\0') + "DICM" + std::string(64, '\0');
  EXPECT_FALSE(dd::is_dicom(write("offset.dcm", wrong_offset)));
  EXPECT_TRUE(dd::is_dicom(write("magic.bin", std::string(128, '\0') + "DICM")));
  std::int64_t h = 0, w = 0;
  expect_error<dne::DataError>([&] { dd::read_dicom(path("a.png"), h, w); },
                               {"a.png", "not a DICOM"});
  expect_error<dne::DataError>([&] { dd::read_dicom(path("missing.dcm"), h, w); },
                               {"missing.dcm", "cannot open"});
}

TEST_F(Dicom, TruncatedFileNamesThePath) {
  const std::string full = dicom_bytes(ramp_2x3());
  std::int64_t h = 0, w = 0;
  // cut inside the pixel data (the last 5 of its 12 bytes missing)
  const std::string p1 = write("cut_pixels.dcm", full.substr(0, full.size() - 5));
  expect_error<dne::DataError>([&] { dd::read_dicom(p1, h, w); },
                               {"cut_pixels.dcm", "truncated", "(7FE0,0010)"});
  // cut inside the meta header, just after the magic and a few bytes
  const std::string p2 = write("cut_meta.dcm", full.substr(0, 140));
  expect_error<dne::DataError>([&] { dd::read_dicom(p2, h, w); }, {"cut_meta.dcm"});
  // cut just before the pixel data element: no pixels at all
  const std::size_t before_pixels = full.size() - 12 - 12;  // 12-byte OW header + 12 bytes
  const std::string p3 = write("no_pixels.dcm", full.substr(0, before_pixels));
  expect_error<dne::DataError>([&] { dd::read_dicom(p3, h, w); }, {"no_pixels.dcm", "Pixel Data"});
  // every other cut point: a DataError too (GDCM alone would abort the process on most of them)
  for (std::size_t n = 0; n < full.size(); ++n) {
    const std::string p = write("cut.dcm", full.substr(0, n));
    EXPECT_THROW(dd::read_dicom(p, h, w), dne::DataError) << "cut at " << n;
  }
}

TEST_F(Dicom, SilencedTheLibraryKeepsItsWarningsOffStderrAndTheErrorStillComes) {
  gdcm::Trace::WarningOn();  // as a fresh process has it (GDCM writes its warnings to std::cerr)
  gdcm::Trace::DebugOn();
  dd::silence_dicom_library_messages();  // process-wide from here on, as `dne` does at start-up
  EXPECT_FALSE(gdcm::Trace::GetWarningFlag());
  EXPECT_FALSE(gdcm::Trace::GetDebugFlag());
  const std::string full = dicom_bytes(ramp_2x3());
  std::int64_t h = 0, w = 0;
  ::testing::internal::CaptureStderr();
  for (std::size_t n = 132; n < full.size(); ++n) {  // every cut after the magic: one DataError each
    const std::string p = write("cut.dcm", full.substr(0, n));
    EXPECT_THROW(dd::read_dicom(p, h, w), dne::DataError) << "cut at " << n;
  }
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST_F(Dicom, RefusesMultiFrameColourAndUnknownTransferSyntax) {
  std::int64_t h = 0, w = 0;
  DicomSpec multi = ramp_2x3();
  multi.frames = "2";
  multi.words.insert(multi.words.end(), {1, 2, 3, 4, 5, 6});
  const std::string pm = write("multi.dcm", multi);
  expect_error<dne::DataError>([&] { dd::read_dicom(pm, h, w); }, {"multi.dcm", "multi-frame"});

  DicomSpec rgb;
  rgb.rows = 1;
  rgb.cols = 2;
  rgb.samples_per_pixel = 3;
  rgb.photometric = "RGB";
  rgb.words = {1, 2, 3, 4, 5, 6};
  const std::string pc = write("rgb.dcm", rgb);
  expect_error<dne::DataError>([&] { dd::read_dicom(pc, h, w); }, {"rgb.dcm", "colour"});

  DicomSpec unknown_ts = ramp_2x3();
  unknown_ts.transfer_syntax = "1.2.3.4.5.6.7";
  const std::string pt = write("ts.dcm", unknown_ts);
  expect_error<dne::DataError>([&] { dd::read_dicom(pt, h, w); },
                               {"ts.dcm", "unsupported transfer syntax 1.2.3.4.5.6.7"});
  DicomSpec mpeg = ramp_2x3();  // known to GDCM, but video: refused before GDCM sees it
  mpeg.transfer_syntax = "1.2.840.10008.1.2.4.100";
  const std::string pv = write("mpeg.dcm", mpeg);
  expect_error<dne::DataError>([&] { dd::read_dicom(pv, h, w); },
                               {"mpeg.dcm", "unsupported transfer syntax"});

  DicomSpec bad_slope = ramp_2x3();
  bad_slope.rescale_slope = "two";
  const std::string ps = write("slope.dcm", bad_slope);
  expect_error<dne::DataError>([&] { dd::read_dicom(ps, h, w); }, {"slope.dcm", "RescaleSlope"});
}

TEST_F(Dicom, ReadGrayscaleImageDispatchesOnContent) {
  // a .dcm and the same bytes named .png both decode as DICOM (content, not extension)
  DicomSpec s = ramp_2x3();
  s.photometric = "MONOCHROME1";
  const std::vector<float> expected = {1.f, 0.8f, 0.6f, 0.4f, 0.2f, 0.f};
  for (const char* name : {"x.dcm", "x.png"}) {
    std::int64_t h = 0, w = 0;
    const auto im = dd::read_grayscale_image(write(name, s), h, w);
    ASSERT_EQ(h, 2) << name;
    ASSERT_EQ(w, 3) << name;
    for (std::size_t i = 0; i < im.size(); ++i) EXPECT_FLOAT_EQ(im[i], expected[i]) << name;
  }
  // and a real PNG still goes to stb: 8-bit 0 and 255 read back as 0 and 1
  const std::vector<float> png = {0.f, 1.f};
  dd::write_grayscale_png(path("p.png"), png.data(), 1, 2);
  std::int64_t h = 0, w = 0;
  EXPECT_EQ(dd::read_grayscale_image(path("p.png"), h, w), png);
  EXPECT_EQ(h, 1);
  EXPECT_EQ(w, 2);
}

// Re-encodes the DICOM file `src` into transfer syntax `uid` with GDCM's encoders, written to
// `dst`; false when GDCM cannot.
bool gdcm_transcode(const std::string& src, const std::string& dst, const char* uid) {
  gdcm::ImageReader reader;
  reader.SetFileName(src.c_str());
  if (!reader.Read()) return false;
  gdcm::ImageChangeTransferSyntax change;
  change.SetTransferSyntax(gdcm::TransferSyntax(gdcm::TransferSyntax::GetTSType(uid)));
  change.SetInput(reader.GetImage());
  if (!change.Change()) return false;
  gdcm::ImageWriter writer;
  writer.SetFileName(dst.c_str());
  writer.SetFile(reader.GetFile());
  writer.SetImage(change.GetOutput());
  return writer.Write();
}

TEST_F(Dicom, CompressedAndOtherTransferSyntaxes) {
  // The hand-written native files re-encoded by GDCM (lossless syntaxes only) must decode to the
  // hand-computed values: 12 x 20 (GDCM's JPEG 2000 encoder crashes below 8 x 8), stored
  // s_i = (97 i) mod 4096 - offset, min-max normalised,
  // (a) unsigned 12-bit MONOCHROME1 -> 1 - (s - min) / (max - min),
  // (b) signed 16-bit MONOCHROME2 (offset 2048: negative values) -> (s - min) / (max - min).
  const std::vector<const char*> syntaxes = {
      "1.2.840.10008.1.2",       // implicit VR little endian
      "1.2.840.10008.1.2.2",     // explicit VR big endian
      "1.2.840.10008.1.2.1.99",  // deflated explicit VR little endian
      "1.2.840.10008.1.2.5",     // RLE lossless
      "1.2.840.10008.1.2.4.57",  // JPEG lossless, process 14
      "1.2.840.10008.1.2.4.70",  // JPEG lossless, first-order prediction
      "1.2.840.10008.1.2.4.80",  // JPEG-LS lossless
      "1.2.840.10008.1.2.4.90",  // JPEG 2000 lossless
  };
  for (const bool is_signed : {false, true}) {
    DicomSpec s;
    s.rows = 12;
    s.cols = 20;
    s.photometric = is_signed ? "MONOCHROME2" : "MONOCHROME1";
    s.bits_stored = is_signed ? 16 : 12;
    s.high_bit = is_signed ? 15 : 11;
    s.pixel_representation = is_signed ? 1 : 0;
    std::vector<double> stored;
    for (int i = 0; i < 12 * 20; ++i) {
      const int v = (97 * i) % 4096 - (is_signed ? 2048 : 0);
      stored.push_back(v);
      s.words.push_back(static_cast<std::uint16_t>(v & 0xFFFF));
    }
    const double lo = *std::min_element(stored.begin(), stored.end());
    const double hi = *std::max_element(stored.begin(), stored.end());
    std::vector<float> expected;
    for (double v : stored) {
      const double n = (v - lo) / (hi - lo);
      expected.push_back(static_cast<float>(is_signed ? n : 1.0 - n));
    }
    const std::string native = write(is_signed ? "s.dcm" : "u.dcm", s);
    for (const char* uid : syntaxes) {
      const std::string out = path(std::string(is_signed ? "s_" : "u_") + uid + ".dcm");
      ASSERT_TRUE(gdcm_transcode(native, out, uid)) << uid;
      std::int64_t h = 0, w = 0;
      const auto im = dd::read_dicom(out, h, w);
      ASSERT_EQ(h, 12) << uid;
      ASSERT_EQ(w, 20) << uid;
      for (std::size_t i = 0; i < im.size(); ++i) {
        EXPECT_FLOAT_EQ(im[i], expected[i]) << uid << " signed " << is_signed << " pixel " << i;
      }
    }
  }
  // an encapsulated (JPEG 2000) file cut inside its last fragment is refused, not decoded
  std::ifstream in(path("u_1.2.840.10008.1.2.4.90.dcm"), std::ios::binary);
  const std::string j2k((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = write("j2k_cut.dcm", j2k.substr(0, j2k.size() - 20));
  std::int64_t h = 0, w = 0;
  expect_error<dne::DataError>([&] { dd::read_dicom(cut, h, w); }, {"j2k_cut.dcm", "truncated"});
}

// ------------------------------------------------------------------------------------------------
// fit_square

std::vector<float> iota(std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i);
  return v;
}

TEST(ResizeModeNames, ParsesTheThreeNames) {
  EXPECT_EQ(dd::parse_resize_mode("stretch"), dd::ResizeMode::kStretch);
  EXPECT_EQ(dd::parse_resize_mode("crop"), dd::ResizeMode::kCrop);
  EXPECT_EQ(dd::parse_resize_mode("pad"), dd::ResizeMode::kPad);
  expect_error<dne::ConfigError>([] { dd::parse_resize_mode("Crop"); }, {"data.resize", "Crop"});
  expect_error<dne::ConfigError>([] { dd::parse_resize_mode(""); }, {"data.resize"});
}

TEST(FitSquare, CropKeepsTheMiddleColumns) {
  // 2 x 4 -> 2: the short side is already 2 (scale 1), so the middle columns 1, 2 remain
  // in = [[0 1 2 3], [4 5 6 7]]
  const auto in = iota(8);
  EXPECT_EQ(dd::fit_square(in.data(), 2, 4, 2, dd::ResizeMode::kCrop),
            (std::vector<float>{1, 2, 5, 6}));
}

TEST(FitSquare, CropTallKeepsTheMiddleRows) {
  // 4 x 2 -> 2: rows 1, 2 of [[0 1], [2 3], [4 5], [6 7]]
  const auto in = iota(8);
  EXPECT_EQ(dd::fit_square(in.data(), 4, 2, 2, dd::ResizeMode::kCrop),
            (std::vector<float>{2, 3, 4, 5}));
}

TEST(FitSquare, CropOddExcessDropsTheExtraAtTheBottomRight) {
  // 2 x 5 -> 2: excess 3, 1 column dropped on the left, 2 on the right -> columns 1, 2
  const auto in = iota(10);  // [[0 1 2 3 4], [5 6 7 8 9]]
  EXPECT_EQ(dd::fit_square(in.data(), 2, 5, 2, dd::ResizeMode::kCrop),
            (std::vector<float>{1, 2, 6, 7}));
  // 5 x 2 -> 2: rows 1, 2 of [[0 1], [2 3], [4 5], [6 7], [8 9]]
  EXPECT_EQ(dd::fit_square(in.data(), 5, 2, 2, dd::ResizeMode::kCrop),
            (std::vector<float>{2, 3, 4, 5}));
}

TEST(FitSquare, PadCentresOnBlack) {
  // 2 x 4 -> 4: the long side is already 4 (scale 1); rows 0 and 3 are zero, rows 1, 2 the image
  const std::vector<float> in = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::vector<float> wide = {0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0};
  EXPECT_EQ(dd::fit_square(in.data(), 2, 4, 4, dd::ResizeMode::kPad), wide);
  // 4 x 2 -> 4: columns 0 and 3 zero; in = [[1 2], [3 4], [5 6], [7 8]]
  const std::vector<float> tall = {0, 1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 0, 0, 7, 8, 0};
  EXPECT_EQ(dd::fit_square(in.data(), 4, 2, 4, dd::ResizeMode::kPad), tall);
}

TEST(FitSquare, PadOddMarginPutsTheExtraAtTheBottomRight) {
  // 1 x 4 -> 4: one image row at offset floor(3 / 2) = 1; rows 0, 2, 3 zero
  const std::vector<float> in = {1, 2, 3, 4};
  const std::vector<float> wide = {0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(dd::fit_square(in.data(), 1, 4, 4, dd::ResizeMode::kPad), wide);
  const std::vector<float> tall = {0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0};
  EXPECT_EQ(dd::fit_square(in.data(), 4, 1, 4, dd::ResizeMode::kPad), tall);
}

TEST(FitSquare, ScaledCropAndPadByHand) {
  // 4 x 8 image whose value is the column index x. Shrinking 8 -> 4 columns (factor 2): output
  // column i is centred at source 2i + 1 with triangle half-width 2, taps j = 2i-1 .. 2i+2 with
  // weights 1/4, 3/4, 3/4, 1/4 (renormalised at the edges):
  //   i = 0: (0.75 * 0 + 0.75 * 1 + 0.25 * 2) / 1.75 = 5/7;  i = 1: 2.5;  i = 2: 4.5;
  //   i = 3: (0.25 * 5 + 0.75 * 6 + 0.75 * 7) / 1.75 = 44/7.
  // Rows are constant, so the vertical pass (4 -> 2 rows) leaves them unchanged.
  std::vector<float> in(32);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i % 8);
  // crop to 2: short side 4 -> 2, long side 8 -> 4, keep the middle columns 1, 2
  const auto crop = dd::fit_square(in.data(), 4, 8, 2, dd::ResizeMode::kCrop);
  ASSERT_EQ(crop.size(), 4U);
  for (int r = 0; r < 2; ++r) {
    EXPECT_NEAR(crop[static_cast<std::size_t>(r * 2)], 2.5f, 1e-5f);
    EXPECT_NEAR(crop[static_cast<std::size_t>(r * 2 + 1)], 4.5f, 1e-5f);
  }
  // pad to 4: long side 8 -> 4, short side 4 -> 2 rows placed at rows 1, 2
  const auto pad = dd::fit_square(in.data(), 4, 8, 4, dd::ResizeMode::kPad);
  ASSERT_EQ(pad.size(), 16U);
  const float row[4] = {5.f / 7.f, 2.5f, 4.5f, 44.f / 7.f};
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      const float want = (r == 1 || r == 2) ? row[c] : 0.f;
      EXPECT_NEAR(pad[static_cast<std::size_t>(r * 4 + c)], want, 1e-5f) << r << "," << c;
    }
  }
}

TEST(FitSquare, RoundedSidesHalvesUp) {
  // constant 0.7 images, so only the layout shows:
  // 3 x 4 pad to 2: short side 2 * 3 / 4 = 1.5 -> 2 (halves up): no black row at all
  const std::vector<float> c12(12, 0.7f);
  for (float v : dd::fit_square(c12.data(), 3, 4, 2, dd::ResizeMode::kPad)) {
    EXPECT_NEAR(v, 0.7f, 1e-6f);
  }
  // 3 x 7 pad to 4: 4 * 3 / 7 = 1.71 -> 2 rows at offset 1: rows 0 and 3 black
  const std::vector<float> c21(21, 0.7f);
  const auto p = dd::fit_square(c21.data(), 3, 7, 4, dd::ResizeMode::kPad);
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      EXPECT_NEAR(p[static_cast<std::size_t>(r * 4 + c)], (r == 1 || r == 2) ? 0.7f : 0.f, 1e-6f);
    }
  }
  // 1 x 100 pad to 4: 0.04 rounds to 0, kept at 1 row (offset 1)
  const std::vector<float> c100(100, 0.7f);
  const auto thin = dd::fit_square(c100.data(), 1, 100, 4, dd::ResizeMode::kPad);
  for (int r = 0; r < 4; ++r) {
    EXPECT_NEAR(thin[static_cast<std::size_t>(r * 4)], r == 1 ? 0.7f : 0.f, 1e-6f) << r;
  }
}

TEST(FitSquare, StretchAndSquareInputsAreResizeBilinear) {
  const auto in = iota(8);
  EXPECT_EQ(dd::fit_square(in.data(), 2, 4, 3, dd::ResizeMode::kStretch),
            dd::resize_bilinear(in.data(), 2, 4, 3, 3));
  EXPECT_EQ(dd::fit_square(in.data(), 4, 2, 5, dd::ResizeMode::kStretch),
            dd::resize_bilinear(in.data(), 4, 2, 5, 5));
  const auto sq = iota(16);
  for (auto mode : {dd::ResizeMode::kStretch, dd::ResizeMode::kCrop, dd::ResizeMode::kPad}) {
    EXPECT_EQ(dd::fit_square(sq.data(), 4, 4, 2, mode), dd::resize_bilinear(sq.data(), 4, 4, 2, 2));
    EXPECT_EQ(dd::fit_square(sq.data(), 4, 4, 4, mode), sq);  // same size: unchanged
  }
  expect_error<dne::DataError>([&] { dd::fit_square(in.data(), 2, 4, 0, dd::ResizeMode::kCrop); },
                               {"fit_square"});
  expect_error<dne::DataError>([&] { dd::fit_square(in.data(), 0, 4, 2, dd::ResizeMode::kPad); },
                               {"fit_square"});
}

}  // namespace
