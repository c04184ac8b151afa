#include "server/similarity/medical_image.h"

// DCMTK's configuration header must come before any other DCMTK header.
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/oflog/oflog.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "model/encoders/image_io.h"

namespace recsys {
namespace similarity {
namespace {

void InitDcmtkOnce() {
  static absl::once_flag once;
  absl::call_once(once, [] {
    // DCMTK logs parse warnings to stderr; a server answers with a status.
    OFLog::configure(OFLogger::OFF_LOG_LEVEL);
    DcmRLEDecoderRegistration::registerCodecs();
    DJDecoderRegistration::registerCodecs();
  });
}

bool IsPng(absl::string_view b) {
  return b.size() >= 8 && b.substr(0, 8) == "\x89PNG\r\n\x1a\n";
}
bool IsJpeg(absl::string_view b) {
  return b.size() >= 3 && static_cast<unsigned char>(b[0]) == 0xFF &&
         static_cast<unsigned char>(b[1]) == 0xD8 &&
         static_cast<unsigned char>(b[2]) == 0xFF;
}

absl::Status CheckSize(int64_t rows, int64_t cols,
                       const MedicalImageOptions& o);

uint32_t BigEndian(absl::string_view b, size_t at, int n) {
  uint32_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

// The size a PNG (IHDR) or JPEG (first SOFn marker) declares, checked
// against the limits before anything is decoded, so a small file that
// declares a huge image costs nothing. Headers too damaged to read are left
// to the decoder, which reports them.
absl::Status CheckDeclaredSize(absl::string_view b,
                               const MedicalImageOptions& o) {
  if (IsPng(b)) {
    if (b.size() >= 24 && b.substr(12, 4) == "IHDR") {
      return CheckSize(BigEndian(b, 20, 4), BigEndian(b, 16, 4), o);
    }
    return absl::OkStatus();
  }
  size_t at = 2;
  while (at + 4 <= b.size()) {
    if (static_cast<unsigned char>(b[at]) != 0xFF) return absl::OkStatus();
    const unsigned char marker = static_cast<unsigned char>(b[at + 1]);
    if (marker == 0xFF) {  // fill byte
      ++at;
      continue;
    }
    if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) {
      at += 2;
      continue;
    }
    const uint32_t length = BigEndian(b, at + 2, 2);
    const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 &&
                     marker != 0xC8 && marker != 0xCC;
    if (sof && at + 9 <= b.size()) {
      return CheckSize(BigEndian(b, at + 5, 2), BigEndian(b, at + 7, 2), o);
    }
    if (length < 2) return absl::OkStatus();
    at += 2 + length;
  }
  return absl::OkStatus();
}

absl::Status CheckSize(int64_t rows, int64_t cols,
                       const MedicalImageOptions& o) {
  if (rows < 1 || cols < 1 || rows > o.max_side || cols > o.max_side) {
    return absl::InvalidArgumentError(
        absl::StrCat("image size ", cols, "x", rows, ": expected 1..",
                     o.max_side, " pixels per side"));
  }
  if (rows * cols > o.max_pixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("image size ", cols, "x", rows, " = ", rows * cols,
                     " pixels, more than the limit of ", o.max_pixels));
  }
  return absl::OkStatus();
}

std::string GetString(DcmDataset* ds, const DcmTagKey& tag) {
  OFString value;
  if (ds->findAndGetOFString(tag, value).good()) {
    return std::string(absl::StripAsciiWhitespace(value.c_str()));
  }
  return "";
}

// A numeric attribute (DS / IS, first value); nullopt when absent or empty.
absl::StatusOr<std::optional<double>> GetNumber(DcmDataset* ds,
                                                const DcmTagKey& tag,
                                                absl::string_view name) {
  const std::string s = GetString(ds, tag);
  if (s.empty()) return std::optional<double>();
  const std::string first = s.substr(0, s.find('\\'));
  double v = 0;
  if (!absl::SimpleAtod(first, &v) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("DICOM ", name, " ", QuoteUserInput(s), " is not a number"));
  }
  return std::optional<double>(v);
}

absl::StatusOr<int> GetUint16(DcmDataset* ds, const DcmTagKey& tag,
                              absl::string_view name, bool required,
                              int fallback) {
  Uint16 v = 0;
  if (ds->findAndGetUint16(tag, v).good()) return v;
  if (required) {
    return absl::InvalidArgumentError(
        absl::StrCat("DICOM ", name, " missing"));
  }
  return fallback;
}

absl::StatusOr<MedicalImage> DecodeDicom(absl::string_view bytes,
                                         const MedicalImageOptions& o) {
  InitDcmtkOnce();
  DcmInputBufferStream stream;
  stream.setBuffer(bytes.data(), static_cast<offile_off_t>(bytes.size()));
  stream.setEos();
  DcmFileFormat file;
  file.transferInit();
  const OFCondition read = file.read(stream, EXS_Unknown, EGL_noChange,
                                     DCM_MaxReadLength);
  file.transferEnd();
  if (read.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a readable DICOM file (truncated or damaged?): ",
                     read.text()));
  }
  DcmDataset* ds = file.getDataset();
  MedicalImage out;
  out.format = "dicom";
  const std::pair<DcmTagKey, const char*> kLabels[] = {
      {DCM_Modality, "modality"},
      {DCM_BodyPartExamined, "body_part"},
      {DCM_StudyInstanceUID, "study_instance_uid"},
      {DCM_SOPInstanceUID, "sop_instance_uid"}};
  for (const auto& [tag, name] : kLabels) {
    std::string v = GetString(ds, tag);
    if (!v.empty()) out.labels[name] = v.substr(0, 256);
  }

  DcmElement* pixel_element = nullptr;
  if (ds->findAndGetElement(DCM_PixelData, pixel_element).bad() ||
      pixel_element == nullptr) {
    return absl::InvalidArgumentError(
        "DICOM has no pixel data (PixelData (7FE0,0010) absent)");
  }
  ASSIGN_OR_RETURN(const int rows, GetUint16(ds, DCM_Rows, "Rows", true, 0));
  ASSIGN_OR_RETURN(const int cols, GetUint16(ds, DCM_Columns, "Columns", true, 0));
  RETURN_IF_ERROR(CheckSize(rows, cols, o));
  ASSIGN_OR_RETURN(const int spp, GetUint16(ds, DCM_SamplesPerPixel,
                                            "SamplesPerPixel", false, 1));
  ASSIGN_OR_RETURN(out.bits_allocated, GetUint16(ds, DCM_BitsAllocated,
                                                 "BitsAllocated", true, 0));
  ASSIGN_OR_RETURN(out.bits_stored,
                   GetUint16(ds, DCM_BitsStored, "BitsStored", false,
                             out.bits_allocated));
  ASSIGN_OR_RETURN(const int high_bit, GetUint16(ds, DCM_HighBit, "HighBit",
                                                 false, out.bits_stored - 1));
  ASSIGN_OR_RETURN(const int pixel_rep,
                   GetUint16(ds, DCM_PixelRepresentation,
                             "PixelRepresentation", false, 0));
  ASSIGN_OR_RETURN(const int planar, GetUint16(ds, DCM_PlanarConfiguration,
                                               "PlanarConfiguration", false, 0));
  out.photometric = GetString(ds, DCM_PhotometricInterpretation);
  out.is_signed = pixel_rep == 1;

  if (out.bits_allocated != 8 && out.bits_allocated != 16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DICOM BitsAllocated ", out.bits_allocated, ": expected 8 or 16"));
  }
  if (out.bits_stored < 1 || out.bits_stored > out.bits_allocated ||
      high_bit < out.bits_stored - 1 || high_bit >= out.bits_allocated) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DICOM BitsStored ", out.bits_stored, " / HighBit ", high_bit,
        " do not fit BitsAllocated ", out.bits_allocated));
  }
  const bool mono = out.photometric == "MONOCHROME1" ||
                    out.photometric == "MONOCHROME2";
  const bool rgb = out.photometric == "RGB" && spp == 3 &&
                   out.bits_allocated == 8;
  if (!(mono && spp == 1) && !rgb) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DICOM PhotometricInterpretation ", QuoteUserInput(out.photometric), " with ",
        spp, " samples per pixel, ", out.bits_allocated,
        " bits: expected MONOCHROME1/MONOCHROME2 (1 sample) or 8-bit RGB"));
  }

  ASSIGN_OR_RETURN(std::optional<double> frames,
                   GetNumber(ds, DCM_NumberOfFrames, "NumberOfFrames"));
  if (frames.has_value() && !(*frames >= 1 && *frames <= 1e6)) {
    return absl::InvalidArgumentError(
        absl::StrCat("DICOM NumberOfFrames ", *frames, ": expected 1..1000000"));
  }
  out.frames = frames.has_value() ? static_cast<int>(*frames) : 1;
  if (out.frames > 1 && o.multi_frame == MedicalImageOptions::MultiFrame::kRefuse) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DICOM has ", out.frames,
        " frames; only single-frame images are indexed (or set multi_frame "
        "to kFirstFrame)"));
  }

  const E_TransferSyntax original = ds->getOriginalXfer();
  DcmXfer xfer(original);
  out.transfer_syntax = xfer.getXferName();
  // Decompress only once the header has passed every limit.
  if (xfer.isEncapsulated()) {
    if (ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr).bad() ||
        !ds->canWriteXfer(EXS_LittleEndianExplicit)) {
      return absl::InvalidArgumentError(
          absl::StrCat("DICOM transfer syntax ", xfer.getXferName(), " (",
                       xfer.getXferID(),
                       ") cannot be decoded here; supported: uncompressed, "
                       "deflated, RLE, JPEG baseline/extended/lossless"));
    }
  }

  // The first frame's samples.
  const size_t bytes_per_sample = out.bits_allocated / 8;
  const size_t samples = static_cast<size_t>(rows) * cols * spp;
  const uint8_t* data = nullptr;
  size_t length = 0;
  if (out.bits_allocated == 16) {
    Uint16* words = nullptr;
    if (pixel_element->getUint16Array(words).good() && words != nullptr) {
      data = reinterpret_cast<const uint8_t*>(words);
    }
  } else {
    Uint8* b = nullptr;
    if (pixel_element->getUint8Array(b).good() && b != nullptr) {
      data = b;
    } else {
      Uint16* words = nullptr;  // 8-bit samples stored as OW
      if (pixel_element->getUint16Array(words).good() && words != nullptr) {
        data = reinterpret_cast<const uint8_t*>(words);
      }
    }
  }
  length = pixel_element->getLength();
  if (data == nullptr || length < samples * bytes_per_sample) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DICOM pixel data truncated: ", data == nullptr ? 0 : length,
        " bytes, ", cols, "x", rows, "x", spp, " samples of ",
        out.bits_allocated, " bits need ", samples * bytes_per_sample));
  }

  ASSIGN_OR_RETURN(std::optional<double> slope,
                   GetNumber(ds, DCM_RescaleSlope, "RescaleSlope"));
  ASSIGN_OR_RETURN(std::optional<double> intercept,
                   GetNumber(ds, DCM_RescaleIntercept, "RescaleIntercept"));
  out.rescale_slope = slope.value_or(1.0);
  out.rescale_intercept = intercept.value_or(0.0);
  if (out.rescale_slope == 0) {
    return absl::InvalidArgumentError("DICOM RescaleSlope is 0");
  }

  // Modality values.
  const int shift = high_bit + 1 - out.bits_stored;
  const uint32_t mask = out.bits_stored == 32
                            ? 0xFFFFFFFFu
                            : ((1u << out.bits_stored) - 1);
  const uint32_t sign_bit = 1u << (out.bits_stored - 1);
  std::vector<double> values(static_cast<size_t>(rows) * cols);
  auto sample = [&](size_t i) -> double {
    uint32_t raw = bytes_per_sample == 2
                       ? reinterpret_cast<const Uint16*>(data)[i]
                       : data[i];
    raw = (raw >> shift) & mask;
    int64_t v = raw;
    if (out.is_signed && (raw & sign_bit)) v -= int64_t{1} << out.bits_stored;
    return static_cast<double>(v) * out.rescale_slope + out.rescale_intercept;
  };
  const size_t plane = static_cast<size_t>(rows) * cols;
  if (rgb) {
    for (size_t i = 0; i < plane; ++i) {
      const double r = planar ? data[i] : data[i * 3];
      const double g = planar ? data[plane + i] : data[i * 3 + 1];
      const double b = planar ? data[2 * plane + i] : data[i * 3 + 2];
      values[i] = 0.299 * r + 0.587 * g + 0.114 * b;
    }
  } else {
    for (size_t i = 0; i < plane; ++i) values[i] = sample(i);
  }

  // VOI window.
  bool have_window = false;
  if (o.window.has_value()) {
    if (!(o.window->width >= 1) || !std::isfinite(o.window->center)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "window: width ", o.window->width, " must be >= 1"));
    }
    out.window = *o.window;
    have_window = true;
  } else {
    ASSIGN_OR_RETURN(std::optional<double> c,
                     GetNumber(ds, DCM_WindowCenter, "WindowCenter"));
    ASSIGN_OR_RETURN(std::optional<double> w,
                     GetNumber(ds, DCM_WindowWidth, "WindowWidth"));
    // A width below 1 is invalid (C.11.2.1.2): fall back to min..max.
    if (c.has_value() && w.has_value() && *w >= 1) {
      out.window = {*c, *w};
      out.window_from_file = true;
      have_window = true;
    }
  }
  GrayImage& img = out.image;
  img.width = cols;
  img.height = rows;
  img.pixels.resize(plane);
  if (rgb) {
    // Colour images are display values already: luma / 255, no window.
    out.window = {127.5, 256};
    for (size_t i = 0; i < plane; ++i) {
      img.pixels[i] = static_cast<float>(values[i] / 255.0);
    }
  } else if (have_window) {
    const double c = out.window.center - 0.5;
    const double w = out.window.width - 1;
    for (size_t i = 0; i < plane; ++i) {
      double y;
      if (w <= 0) {
        y = values[i] <= c ? 0.0 : 1.0;
      } else {
        y = std::clamp((values[i] - c) / w + 0.5, 0.0, 1.0);
      }
      img.pixels[i] = static_cast<float>(y);
    }
  } else {
    const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
    const double range = *hi - *lo;
    out.window = {(*lo + *hi) / 2, range + 1};
    for (size_t i = 0; i < plane; ++i) {
      img.pixels[i] =
          range > 0 ? static_cast<float>((values[i] - *lo) / range) : 0.0f;
    }
  }
  if (out.photometric == "MONOCHROME1") {
    for (float& p : img.pixels) p = 1.0f - p;
  }
  return out;
}

}  // namespace

bool HasDicomPreamble(absl::string_view bytes) {
  return bytes.size() >= 132 && bytes.substr(128, 4) == "DICM";
}

absl::StatusOr<MedicalImage> DecodeMedicalImage(
    absl::string_view bytes, const MedicalImageOptions& options) {
  if (bytes.empty()) {
    return absl::InvalidArgumentError("image: empty");
  }
  if (static_cast<int64_t>(bytes.size()) > options.max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("image: ", bytes.size(), " bytes, more than the limit of ",
                     options.max_bytes));
  }
  if (IsPng(bytes) || IsJpeg(bytes)) {
    RETURN_IF_ERROR(CheckDeclaredSize(bytes, options));
    auto rgb = DecodeImage(bytes);
    if (!rgb.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("image: ", rgb.status().message()));
    }
    RETURN_IF_ERROR(CheckSize(rgb->height, rgb->width, options));
    MedicalImage out;
    out.format = IsPng(bytes) ? "png" : "jpeg";
    out.image = GrayFromRgb(*rgb);
    return out;
  }
  try {
    auto dicom = DecodeDicom(bytes, options);
    if (!dicom.ok() && !HasDicomPreamble(bytes) &&
        absl::StartsWith(dicom.status().message(), "not a readable DICOM")) {
      return absl::InvalidArgumentError(
          "image: not PNG, JPEG or DICOM (no PNG/JPEG signature, no DICOM "
          "preamble, and no DICOM data set could be parsed)");
    }
    return dicom;
  } catch (const std::bad_alloc&) {
    return absl::InvalidArgumentError(
        "DICOM: an element length asks for more memory than available");
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("DICOM: decoding failed: ", e.what()));
  }
}

}  // namespace similarity
}  // namespace recsys
