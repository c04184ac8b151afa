#include "server/similarity/medical_image.h"

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcuid.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/similarity/fashion_mnist.h"
#include "model/encoders/image_io.h"

namespace recsys {
namespace similarity {
namespace {

using ::testing::HasSubstr;

constexpr char kPydicomTestFiles[] =
    "/usr/lib/python3/dist-packages/pydicom/data/test_files";

// A DICOM file written with DCMTK: the pixel values and header fields under
// test, nothing else.
struct DicomSpec {
  int rows = 2;
  int cols = 3;
  int bits_allocated = 16;
  int bits_stored = 16;
  int high_bit = 15;
  int pixel_representation = 0;
  std::string photometric = "MONOCHROME2";
  std::vector<uint16_t> stored;  // rows * cols * frames raw words / bytes
  int frames = 1;
  std::optional<std::string> number_of_frames;  // overrides `frames` as text
  std::optional<std::string> slope, intercept, center, width;
  bool pixel_data = true;
};

std::string WriteDicom(const DicomSpec& s, const std::string& name) {
  DcmFileFormat file;
  DcmDataset* ds = file.getDataset();
  char uid[100];
  ds->putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
  ds->putAndInsertString(DCM_SOPInstanceUID,
                         dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT));
  ds->putAndInsertString(DCM_StudyInstanceUID, "1.2.826.0.1.3680043.2.14");
  ds->putAndInsertString(DCM_Modality, "CT");
  ds->putAndInsertString(DCM_BodyPartExamined, "CHEST");
  ds->putAndInsertUint16(DCM_Rows, s.rows);
  ds->putAndInsertUint16(DCM_Columns, s.cols);
  ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
  ds->putAndInsertString(DCM_PhotometricInterpretation, s.photometric.c_str());
  ds->putAndInsertUint16(DCM_BitsAllocated, s.bits_allocated);
  ds->putAndInsertUint16(DCM_BitsStored, s.bits_stored);
  ds->putAndInsertUint16(DCM_HighBit, s.high_bit);
  ds->putAndInsertUint16(DCM_PixelRepresentation, s.pixel_representation);
  if (s.number_of_frames) {
    ds->putAndInsertString(DCM_NumberOfFrames, s.number_of_frames->c_str());
  } else if (s.frames > 1) {
    ds->putAndInsertString(DCM_NumberOfFrames, absl::StrCat(s.frames).c_str());
  }
  if (s.slope) ds->putAndInsertString(DCM_RescaleSlope, s.slope->c_str());
  if (s.intercept) ds->putAndInsertString(DCM_RescaleIntercept, s.intercept->c_str());
  if (s.center) ds->putAndInsertString(DCM_WindowCenter, s.center->c_str());
  if (s.width) ds->putAndInsertString(DCM_WindowWidth, s.width->c_str());
  if (s.pixel_data) {
    if (s.bits_allocated == 16) {
      ds->putAndInsertUint16Array(DCM_PixelData, s.stored.data(), s.stored.size());
    } else {
      std::vector<Uint8> bytes(s.stored.begin(), s.stored.end());
      if (bytes.size() % 2) bytes.push_back(0);
      ds->putAndInsertUint8Array(DCM_PixelData, bytes.data(), bytes.size());
    }
  }
  const std::string path = TestTempPath(name);
  EXPECT_TRUE(file.saveFile(path.c_str(), EXS_LittleEndianExplicit).good());
  auto bytes = ReadFileToString(path);
  EXPECT_OK(bytes.status());
  return bytes.ok() ? *bytes : "";
}

uint16_t Word(int v) { return static_cast<uint16_t>(v); }

// The linear VOI function of PS3.3 C.11.2.1.2.1, written out plainly.
double Window(double x, double c, double w) {
  if (x <= c - 0.5 - (w - 1) / 2) return 0;
  if (x > c - 0.5 + (w - 1) / 2) return 1;
  return (x - (c - 0.5)) / (w - 1) + 0.5;
}

TEST(MedicalImageTest, SignedSixteenBitWithRescaleAndFileWindow) {
  DicomSpec s;
  s.pixel_representation = 1;
  s.stored = {Word(-50), Word(0), Word(50), Word(100), Word(-32768), Word(32767)};
  s.slope = "2";
  s.intercept = "-100";
  s.center = "0\\40";  // two windows: the first one is used
  s.width = "201\\80";
  ASSERT_OK_AND_ASSIGN(MedicalImage m,
                       DecodeMedicalImage(WriteDicom(s, "signed.dcm")));
  EXPECT_EQ(m.format, "dicom");
  EXPECT_TRUE(m.is_signed);
  EXPECT_TRUE(m.window_from_file);
  EXPECT_EQ(m.rescale_slope, 2);
  EXPECT_EQ(m.rescale_intercept, -100);
  ASSERT_EQ(m.image.width, 3);
  ASSERT_EQ(m.image.height, 2);
  const int raw[] = {-50, 0, 50, 100, -32768, 32767};
  for (int i = 0; i < 6; ++i) {
    EXPECT_NEAR(m.image.pixels[i], Window(raw[i] * 2.0 - 100, 0, 201), 1e-6)
        << i;
  }
  EXPECT_NEAR(m.image.pixels[2], 0.5 + 0.5 / 200, 1e-6);  // 0 -> mid grey
  EXPECT_EQ(m.labels.at("modality"), "CT");
  EXPECT_EQ(m.labels.at("body_part"), "CHEST");
  EXPECT_EQ(m.labels.at("study_instance_uid"), "1.2.826.0.1.3680043.2.14");
  EXPECT_EQ(m.labels.count("sop_instance_uid"), 1u);
}

TEST(MedicalImageTest, TwelveBitsStoredAreMaskedAndSignExtended) {
  DicomSpec s;
  s.rows = 1;
  s.cols = 4;
  s.bits_stored = 12;
  s.high_bit = 11;
  s.pixel_representation = 1;
  // Upper four bits are garbage; 0x0FFF is -1 in 12-bit two's complement.
  s.stored = {0xF005, 0x0FFF, 0x0800, 0x07FF};
  ASSERT_OK_AND_ASSIGN(MedicalImage m,
                       DecodeMedicalImage(WriteDicom(s, "twelve.dcm")));
  // No window: min..max of {5, -1, -2048, 2047}.
  const double values[] = {5, -1, -2048, 2047};
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(m.image.pixels[i], (values[i] + 2048) / 4095.0, 1e-6) << i;
  }
  EXPECT_FALSE(m.window_from_file);
}

TEST(MedicalImageTest, EightBitMonochrome1IsInvertedAndWindowCanBeOverridden) {
  DicomSpec s;
  s.rows = 1;
  s.cols = 3;
  s.bits_allocated = s.bits_stored = 8;
  s.high_bit = 7;
  s.photometric = "MONOCHROME1";
  s.stored = {0, 51, 255};
  ASSERT_OK_AND_ASSIGN(MedicalImage m,
                       DecodeMedicalImage(WriteDicom(s, "mono1.dcm")));
  EXPECT_EQ(m.photometric, "MONOCHROME1");
  EXPECT_NEAR(m.image.pixels[0], 1.0, 1e-6);  // lowest value shows white
  EXPECT_NEAR(m.image.pixels[1], 1 - 51 / 255.0, 1e-6);
  EXPECT_NEAR(m.image.pixels[2], 0.0, 1e-6);

  MedicalImageOptions o;
  o.window = VoiWindow{50, 21};
  ASSERT_OK_AND_ASSIGN(MedicalImage w,
                       DecodeMedicalImage(WriteDicom(s, "mono1.dcm"), o));
  EXPECT_NEAR(w.image.pixels[1], 1 - Window(51, 50, 21), 1e-6);
  EXPECT_NEAR(w.image.pixels[0], 1.0, 1e-6);
  o.window = VoiWindow{50, 0.5};
  EXPECT_THAT(DecodeMedicalImage(WriteDicom(s, "mono1.dcm"), o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("width")));
}

TEST(MedicalImageTest, MultiFrameIsRefusedOrFirstFrameTaken) {
  DicomSpec s;
  s.rows = 1;
  s.cols = 2;
  s.frames = 2;
  s.stored = {0, 10, 500, 600};
  const std::string bytes = WriteDicom(s, "frames.dcm");
  EXPECT_THAT(DecodeMedicalImage(bytes),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("2 frames")));
  MedicalImageOptions o;
  o.multi_frame = MedicalImageOptions::MultiFrame::kFirstFrame;
  ASSERT_OK_AND_ASSIGN(MedicalImage m, DecodeMedicalImage(bytes, o));
  EXPECT_EQ(m.frames, 2);
  EXPECT_NEAR(m.image.pixels[0], 0.0, 1e-6);  // min..max of frame 0: 0..10
  EXPECT_NEAR(m.image.pixels[1], 1.0, 1e-6);
}

TEST(MedicalImageTest, RefusesWithPreciseReasons) {
  DicomSpec s;
  s.pixel_data = false;
  EXPECT_THAT(DecodeMedicalImage(WriteDicom(s, "nopix.dcm")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no pixel data")));
  s = {};
  s.rows = 2;
  s.cols = 2;
  s.stored = {1, 2};  // header says 4 samples
  EXPECT_THAT(DecodeMedicalImage(WriteDicom(s, "short.dcm")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("truncated")));
  s = {};
  s.stored = std::vector<uint16_t>(6, 1);
  MedicalImageOptions o;
  o.max_side = 2;
  EXPECT_THAT(DecodeMedicalImage(WriteDicom(s, "big.dcm"), o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("pixels per side")));
  o = {};
  o.max_pixels = 5;
  EXPECT_THAT(DecodeMedicalImage(WriteDicom(s, "big.dcm"), o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("more than the limit of 5")));
  s.photometric = "YBR_FULL";
  EXPECT_THAT(DecodeMedicalImage(WriteDicom(s, "ybr.dcm")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("PhotometricInterpretation")));
  s = {};
  s.stored = std::vector<uint16_t>(6, 1);
  s.number_of_frames = "9000000";
  EXPECT_THAT(DecodeMedicalImage(WriteDicom(s, "frames_big.dcm")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("NumberOfFrames 9e+06: expected 1..1000000")));
  s.number_of_frames.reset();
  s.slope = "abc";
  EXPECT_THAT(DecodeMedicalImage(WriteDicom(s, "slope.dcm")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("RescaleSlope")));

  EXPECT_THAT(DecodeMedicalImage(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  o = {};
  o.max_bytes = 10;
  EXPECT_THAT(DecodeMedicalImage(std::string(11, 'x'), o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("11 bytes, more than the limit")));
  EXPECT_THAT(DecodeMedicalImage("hello, this is not an image at all"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not PNG, JPEG or DICOM")));
}

TEST(MedicalImageTest, PngAndJpegThroughImageIo) {
  RgbImage rgb{2, 1, {255, 255, 255, 0, 0, 255}};
  ASSERT_OK_AND_ASSIGN(std::string png, EncodePng(rgb));
  ASSERT_OK_AND_ASSIGN(MedicalImage m, DecodeMedicalImage(png));
  EXPECT_EQ(m.format, "png");
  EXPECT_NEAR(m.image.pixels[0], 1.0, 1e-6);
  EXPECT_NEAR(m.image.pixels[1], 0.114, 1e-6);
  EXPECT_TRUE(m.labels.empty());
  std::string corrupt = png.substr(0, 8) + std::string(40, '\x42');
  EXPECT_THAT(DecodeMedicalImage(corrupt),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("corrupt PNG")));
  // A PNG that declares 100000 x 100000 is refused before decoding.
  std::string huge = png;
  huge.replace(16, 8, std::string("\x00\x01\x86\xA0\x00\x01\x86\xA0", 8));
  EXPECT_THAT(DecodeMedicalImage(huge),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("100000x100000")));
  EXPECT_THAT(DecodeMedicalImage("\xFF\xD8\xFF\xE0 not really a jpeg"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("JPEG")));
  // A JPEG header (SOF0) declaring 60000 x 50000.
  const std::string sof = std::string("\xFF\xD8\xFF\xC0\x00\x11\x08", 7) +
                          std::string("\xC3\x50\xEA\x60", 4) +
                          std::string(12, '\x01');
  EXPECT_THAT(DecodeMedicalImage(sof),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("60000x50000")));
  MedicalImageOptions o;
  o.max_side = 1;
  EXPECT_THAT(DecodeMedicalImage(png, o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("pixels per side")));
}

std::string RunfilePath(const std::string& relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", ws ? ws : "recsys", "/",
                      relative);
}

class PydicomFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!PathExists(kPydicomTestFiles)) {
      GTEST_SKIP() << kPydicomTestFiles
                   << " absent: apt-get install python3-pydicom";
    }
  }
  absl::StatusOr<MedicalImage> Decode(const std::string& name,
                                      const MedicalImageOptions& o = {}) {
    auto bytes = ReadFileToString(JoinPath(kPydicomTestFiles, name));
    if (!bytes.ok()) return bytes.status();
    return DecodeMedicalImage(*bytes, o);
  }
};

TEST_F(PydicomFilesTest, CtAndMrMatchPydicomAndNumpy) {
  for (const char* name : {"CT_small.dcm", "MR_small.dcm"}) {
    ASSERT_OK_AND_ASSIGN(MedicalImage m, Decode(name));
    const std::string out = TestTempPath(absl::StrCat(name, ".f32"));
    const std::string cmd = absl::StrCat(
        "/usr/bin/python3 '",
        RunfilePath("server/similarity/testdata/dicom_reference.py"), "' '",
        JoinPath(kPydicomTestFiles, name), "' '", out, "'");
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    ASSERT_OK_AND_ASSIGN(std::string ref, ReadFileToString(out));
    ASSERT_EQ(ref.size(), m.image.pixels.size() * 4) << name;
    std::vector<float> want(m.image.pixels.size());
    std::memcpy(want.data(), ref.data(), ref.size());
    double max_diff = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      max_diff = std::max<double>(max_diff, std::abs(want[i] - m.image.pixels[i]));
    }
    EXPECT_LT(max_diff, 1e-6) << name;
  }
  ASSERT_OK_AND_ASSIGN(MedicalImage ct, Decode("CT_small.dcm"));
  EXPECT_TRUE(ct.is_signed);
  EXPECT_EQ(ct.rescale_intercept, -1024);
  EXPECT_EQ(ct.labels.at("modality"), "CT");
  EXPECT_EQ(ct.image.width, 128);
  ASSERT_OK_AND_ASSIGN(MedicalImage mr, Decode("MR_small.dcm"));
  EXPECT_TRUE(mr.window_from_file);
  EXPECT_EQ(mr.window.center, 600);
  EXPECT_EQ(mr.window.width, 1600);
}

TEST_F(PydicomFilesTest, OtherEncodingsOfTheSameImageDecodeTheSame) {
  ASSERT_OK_AND_ASSIGN(MedicalImage base, Decode("MR_small.dcm"));
  for (const char* name : {"MR_small_bigendian.dcm", "MR_small_implicit.dcm",
                           "MR_small_RLE.dcm"}) {
    ASSERT_OK_AND_ASSIGN(MedicalImage other, Decode(name));
    EXPECT_EQ(other.image.pixels, base.image.pixels) << name;
  }
  // JPEG extended (12-bit) decodes through DCMTK's IJG codec.
  ASSERT_OK_AND_ASSIGN(MedicalImage jpeg, Decode("JPGExtended.dcm"));
  EXPECT_EQ(jpeg.image.width, 256);
  EXPECT_EQ(jpeg.image.height, 1024);
  EXPECT_EQ(jpeg.labels.at("modality"), "NM");
  EXPECT_EQ(jpeg.labels.at("body_part"), "WHOLE BODY");
}

TEST_F(PydicomFilesTest, RealFilesThatMustBeRefused) {
  EXPECT_THAT(Decode("rtplan.dcm"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no pixel data")));
  EXPECT_THAT(Decode("JPEG2000.dcm"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("cannot be decoded here")));
  EXPECT_THAT(Decode("MR_truncated.dcm"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Decode("rtdose.dcm"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Decode("liver_1frame.dcm"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("BitsAllocated 1")));
}

// A 24-bit BMP (what img2dcm reads besides JPEG) of a grey image.
std::string GreyBmp(const GrayImage& g) {
  const int row = g.width * 3;
  const int pad = (4 - row % 4) % 4;
  std::string data;
  for (int y = g.height - 1; y >= 0; --y) {  // bottom-up rows
    for (int x = 0; x < g.width; ++x) {
      const char v = static_cast<char>(
          std::lround(g.pixels[static_cast<size_t>(y) * g.width + x] * 255));
      data.append(3, v);
    }
    data.append(pad, '\0');
  }
  auto le = [](uint32_t v, int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
    return s;
  };
  return "BM" + le(54 + data.size(), 4) + le(0, 4) + le(54, 4) + le(40, 4) +
         le(g.width, 4) + le(g.height, 4) + le(1, 2) + le(24, 2) + le(0, 4) +
         le(data.size(), 4) + le(2835, 4) + le(2835, 4) + le(0, 4) +
         le(0, 4) + data;
}

TEST(MedicalImageImg2dcmTest, FashionMnistImageConvertedByImg2dcm) {
  if (!PathExists("/usr/bin/img2dcm")) {
    GTEST_SKIP() << "no /usr/bin/img2dcm: apt-get install dcmtk";
  }
  if (!PathExists(kDebianFashionMnistDir)) {
    GTEST_SKIP() << "no Fashion-MNIST: apt-get install dataset-fashion-mnist";
  }
  ASSERT_OK_AND_ASSIGN(FashionMnist data, ReadFashionMnist());
  for (int64_t i : {0, 1, 9999}) {
    const GrayImage original = data.test.Image(i);
    const std::string bmp = TestTempPath(absl::StrCat("fm", i, ".bmp"));
    const std::string dcm = TestTempPath(absl::StrCat("fm", i, ".dcm"));
    ASSERT_OK(WriteFileAtomically(bmp, GreyBmp(original)));
    const std::string cmd = absl::StrCat("/usr/bin/img2dcm -i BMP '", bmp,
                                         "' '", dcm, "' >/dev/null 2>&1");
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFileToString(dcm));
    ASSERT_TRUE(HasDicomPreamble(bytes));
    ASSERT_OK_AND_ASSIGN(MedicalImage m, DecodeMedicalImage(bytes));
    EXPECT_EQ(m.photometric, "RGB");  // img2dcm keeps the BMP's colour model
    ASSERT_EQ(m.image.width, 28);
    ASSERT_EQ(m.image.height, 28);
    for (size_t p = 0; p < original.pixels.size(); ++p) {
      ASSERT_NEAR(m.image.pixels[p], original.pixels[p], 1e-6) << i << " " << p;
    }
  }
}

TEST(MedicalImageFuzzTest, ByteFlipsAndTruncationsNeverCrash) {
  std::string base;
  const std::string real = JoinPath(kPydicomTestFiles, "MR_small.dcm");
  if (PathExists(real)) {
    ASSERT_OK_AND_ASSIGN(base, ReadFileToString(real));
  } else {
    DicomSpec s;
    s.rows = s.cols = 16;
    s.stored.assign(256, 7);
    s.center = "5";
    s.width = "10";
    base = WriteDicom(s, "fuzz_base.dcm");
  }
  std::mt19937 rng(14);
  const auto start = std::chrono::steady_clock::now();
  int ok = 0, refused = 0;
  for (int round = 0; round < 2000; ++round) {
    std::string bytes = base;
    if (round % 5 == 4) {
      bytes.resize(rng() % bytes.size());
    } else {
      // Flips concentrated in the header, where lengths and VRs live.
      const int flips = 1 + rng() % 8;
      for (int f = 0; f < flips; ++f) {
        const size_t at = (rng() % 2) ? rng() % std::min<size_t>(bytes.size(), 1024)
                                      : rng() % bytes.size();
        bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8)));
      }
    }
    auto r = DecodeMedicalImage(bytes);
    if (r.ok()) {
      ++ok;
      ASSERT_EQ(r->image.pixels.size(),
                static_cast<size_t>(r->image.width) * r->image.height);
      for (float p : r->image.pixels) {
        ASSERT_TRUE(p >= 0 && p <= 1) << "round " << round;
      }
    } else {
      ++refused;
      ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument)
          << r.status();
    }
  }
  const double seconds = std::chrono::duration<double>(
                             std::chrono::steady_clock::now() - start)
                             .count();
  EXPECT_GT(refused, 0);
  EXPECT_LT(seconds, 10);
  std::printf("fuzz: %d decoded, %d refused, %.2f s\n", ok, refused, seconds);
}

}  // namespace
}  // namespace similarity
}  // namespace recsys
