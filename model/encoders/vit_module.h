// A ViT encoder (Hugging Face ViTModel, inference only) as a LibTorch module
// returning the CLS vector of every hidden state (embedding output, then
// each layer, before the final LayerNorm, as HF's `hidden_states`). Conv
// patch embedding, CLS token, learned positions, pre-LN blocks
// (layernorm_before / layernorm_after), erf GELU. Includes LibTorch: the
// LibTorch-free entry point is vit_image_encoder.h.
//
// Thread-safety: as BertImpl.
#ifndef RECSYS_MODEL_ENCODERS_VIT_MODULE_H_
#define RECSYS_MODEL_ENCODERS_VIT_MODULE_H_

#include <torch/torch.h>

#include "model/encoders/backbone_config.h"
#include "model/encoders/module_weights.h"

namespace recsys {

class ViTLayerImpl : public torch::nn::Module {
 public:
  explicit ViTLayerImpl(const ViTConfig& config);
  // x: [B, T, D]. With `cls_only`, returns only the CLS position [B, 1, D].
  torch::Tensor forward(const torch::Tensor& x, bool cls_only);

  torch::nn::LayerNorm layernorm_before{nullptr};
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
  torch::nn::Linear attention_output{nullptr};
  torch::nn::LayerNorm layernorm_after{nullptr};
  torch::nn::Linear intermediate{nullptr}, output{nullptr};

 private:
  int64_t num_heads_;
  int64_t head_size_;
};
TORCH_MODULE(ViTLayer);

class ViTImpl : public torch::nn::Module {
 public:
  explicit ViTImpl(const ViTConfig& config);

  // pixel_values: [B, num_channels, image_size, image_size], normalised.
  // Returns [B, num_hidden_layers + 1, hidden_size].
  torch::Tensor forward(const torch::Tensor& pixel_values);

  // Every parameter under its HF name without the "vit." prefix.
  HfNamedTensors HfParameters() const;
  const ViTConfig& config() const { return config_; }

 private:
  ViTConfig config_;
  torch::Tensor cls_token_;            // [1, 1, D]
  torch::Tensor position_embeddings_;  // [1, patches + 1, D]
  torch::nn::Conv2d patch_projection{nullptr};
  std::vector<ViTLayer> layers_;
};
TORCH_MODULE(ViT);

}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_VIT_MODULE_H_
