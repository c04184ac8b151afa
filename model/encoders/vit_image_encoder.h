// The ViT image backbone behind the ImageEncoder interface: bilinear resize
// to image_size, mean/std normalisation from the config, ViTModule. Weights
// from a Hugging Face `model.safetensors` ("vit." prefix optional) or a
// seeded stand-in when none are given (BackboneInfo::standin, log line).
// No LibTorch in this header.
#ifndef RECSYS_MODEL_ENCODERS_VIT_IMAGE_ENCODER_H_
#define RECSYS_MODEL_ENCODERS_VIT_IMAGE_ENCODER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/encoders/backbone_config.h"
#include "model/encoders/encoder.h"

namespace recsys {

struct ViTImageEncoderOptions {
  std::string weights_path;  // model.safetensors; empty: seeded stand-in
  // HF config.json (may carry image_mean/image_std). Empty: "config.json"
  // beside weights_path when that exists, otherwise `config`.
  std::string config_path;
  ViTConfig config;          // architecture when there is no config file
  uint64_t seed = 42;        // stand-in weights
  int batch_size = 32;       // images per forward pass
  std::string device = "cpu";
  std::string name;          // BackboneInfo::name; empty: derived
};

// INVALID_ARGUMENT for a bad config (num_channels must be 3) or device;
// NOT_FOUND for missing files; FAILED_PRECONDITION for CUDA without a GPU.
absl::StatusOr<std::unique_ptr<ImageEncoder>> CreateViTImageEncoder(
    const ViTImageEncoderOptions& options);

}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_VIT_IMAGE_ENCODER_H_
