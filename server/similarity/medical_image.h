// Decodes a query or index image (PNG, JPEG or DICOM) into a grayscale
// GrayImage with display values in [0, 1], plus the DICOM labels that are
// worth indexing. PNG and JPEG go through trainer/backbone's image_io
// (then BT.601 luma); DICOM through DCMTK (dcmdata, with the RLE and JPEG
// decoders registered once per process).
//
// DICOM pipeline, per PS3.3 C.7.6.3 / C.11:
//   stored value   BitsStored bits at HighBit, sign-extended when
//                  PixelRepresentation = 1 (8- or 16-bit BitsAllocated)
//   modality value stored * RescaleSlope + RescaleIntercept (1 and 0 when
//                  absent)
//   display value  the linear VOI window (C.11.2.1.2.1) of the override, or
//                  else the file's first WindowCenter/WindowWidth, or else
//                  the image's min..max; MONOCHROME1 is inverted so 1 is
//                  always white. RGB (8-bit, either planar configuration)
//                  is display data already: BT.601 luma / 255, no window.
// Refused, INVALID_ARGUMENT with the reason: input over max_bytes, not
// PNG/JPEG/DICOM, unparsable or truncated DICOM, no PixelData, a transfer
// syntax that cannot be decoded here (JPEG 2000, JPEG-LS, ...), other
// photometric interpretations, BitsAllocated other than 8/16, sizes over
// max_side / max_pixels, pixel data shorter than the header says, and
// multi-frame images unless multi_frame = kFirstFrame (then frame 0 is used
// and `frames` says how many there were).
//
// Thread-safety: DecodeMedicalImage may be called from any number of
// threads; each call owns its DCMTK objects.
#ifndef RECSYS_SERVER_SIMILARITY_MEDICAL_IMAGE_H_
#define RECSYS_SERVER_SIMILARITY_MEDICAL_IMAGE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/similarity/gray_image.h"

namespace recsys {
namespace similarity {

struct VoiWindow {
  double center = 0;
  double width = 1;  // >= 1
};

struct MedicalImageOptions {
  // Inputs larger than this are refused before parsing.
  int64_t max_bytes = 64ll << 20;
  // Rows and columns, each 1..max_side.
  int max_side = 8192;
  // rows * columns at most this.
  int64_t max_pixels = 32ll << 20;
  enum class MultiFrame { kRefuse, kFirstFrame };
  MultiFrame multi_frame = MultiFrame::kRefuse;
  // Replaces the file's window (monochrome DICOM only).
  std::optional<VoiWindow> window;
};

struct MedicalImage {
  GrayImage image;
  std::string format;  // "png", "jpeg" or "dicom"
  // Labels present in the file, under the names the index uses:
  // "modality", "body_part", "study_instance_uid", "sop_instance_uid".
  std::map<std::string, std::string> labels;
  // DICOM only: what the decoding used.
  std::string transfer_syntax;  // e.g. "Little Endian Explicit"
  std::string photometric;      // "MONOCHROME1", "MONOCHROME2", "RGB"
  int bits_allocated = 0;
  int bits_stored = 0;
  bool is_signed = false;
  double rescale_slope = 1;
  double rescale_intercept = 0;
  // The window applied; from_file false with no override means min..max.
  VoiWindow window;
  bool window_from_file = false;
  int frames = 1;
};

absl::StatusOr<MedicalImage> DecodeMedicalImage(
    absl::string_view bytes, const MedicalImageOptions& options = {});

// True when `bytes` has the DICOM preamble ("DICM" at offset 128).
bool HasDicomPreamble(absl::string_view bytes);

}  // namespace similarity
}  // namespace recsys

#endif  // RECSYS_SERVER_SIMILARITY_MEDICAL_IMAGE_H_
