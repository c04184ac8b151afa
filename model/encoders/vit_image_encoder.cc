#include "model/encoders/vit_image_encoder.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "model/encoders/torch_util.h"
#include "model/encoders/vit_module.h"

namespace recsys {
namespace {

class ViTImageEncoder : public ImageEncoder {
 public:
  ViTImageEncoder(ViT model, torch::Device device, int batch_size,
                  BackboneInfo info)
      : model_(std::move(model)),
        device_(device),
        batch_size_(batch_size),
        info_(std::move(info)) {}

  const BackboneInfo& info() const override { return info_; }

  absl::StatusOr<std::vector<float>> Encode(
      const std::vector<RgbImage>& images) override {
    const ViTConfig& c = model_->config();
    const int64_t n = static_cast<int64_t>(images.size());
    const int64_t row = info_.num_states * info_.hidden_size;
    const int64_t side = c.image_size;
    const int64_t pixels = 3 * side * side;
    for (int64_t i = 0; i < n; ++i) {
      const RgbImage& im = images[i];
      if (im.width < 1 || im.height < 1 ||
          im.pixels.size() != static_cast<size_t>(im.width) * im.height * 3) {
        return absl::InvalidArgumentError(
            absl::StrCat("image ", i, " is empty or its size does not match"));
      }
    }
    std::vector<float> out(n * row);
    try {
      torch::InferenceMode guard;
      for (int64_t start = 0; start < n; start += batch_size_) {
        const int64_t b = std::min<int64_t>(batch_size_, n - start);
        torch::Tensor batch = torch::empty({b, 3, side, side}, torch::kFloat);
        float* dst = batch.data_ptr<float>();
        for (int64_t k = 0; k < b; ++k) {
          const std::vector<float> chw = NormalizeToChw(
              ResizeBilinear(images[start + k], side, side), side, side,
              c.image_mean, c.image_std);
          std::memcpy(dst + k * pixels, chw.data(), pixels * sizeof(float));
        }
        torch::Tensor states = model_->forward(batch.to(device_))
                                   .to(torch::kCPU, torch::kFloat)
                                   .contiguous();
        std::memcpy(out.data() + start * row, states.data_ptr<float>(),
                    b * row * sizeof(float));
      }
    } catch (const std::exception& e) {
      return TorchErrorToStatus(e, "ViT forward pass");
    }
    return out;
  }

 private:
  ViT model_;
  const torch::Device device_;
  const int batch_size_;
  const BackboneInfo info_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ImageEncoder>> CreateViTImageEncoder(
    const ViTImageEncoderOptions& options) {
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size must be >= 1, got ", options.batch_size));
  }
  ASSIGN_OR_RETURN(const ViTConfig config,
                   LoadViTConfig(options.config, options.config_path,
                                 options.weights_path));
  if (config.num_channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_channels must be 3 (RGB input), got ", config.num_channels));
  }
  ASSIGN_OR_RETURN(torch::Device device, ParseDevice(options.device));

  BackboneInfo info;
  info.standin = options.weights_path.empty();
  info.num_states = config.num_hidden_layers + 1;
  info.hidden_size = config.hidden_size;
  info.config_json = config.ToJson();
  info.name = !options.name.empty()
                  ? options.name
                  : absl::StrCat(info.standin ? "vit-standin-" : "vit-",
                                 config.num_hidden_layers, "x",
                                 config.hidden_size, "-p", config.patch_size,
                                 "-", config.image_size);
  try {
    torch::NoGradGuard no_grad;
    ViT model(config);
    model->eval();
    const HfNamedTensors params = model->HfParameters();
    RETURN_IF_ERROR(InitOrLoadBackboneWeights(
        params, "ViT", info.name, options.weights_path, "vit.", options.seed,
        "final layernorm/pooler"));
    info.fingerprint = FingerprintWeights(
        params, absl::StrCat(info.config_json, "|seed=",
                             info.standin ? options.seed : 0));
    model->to(device);
    return std::unique_ptr<ImageEncoder>(new ViTImageEncoder(
        std::move(model), device, options.batch_size, std::move(info)));
  } catch (const std::exception& e) {
    return TorchErrorToStatus(e, "building the ViT backbone");
  }
}

}  // namespace recsys
