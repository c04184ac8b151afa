#include "model/encoders/vit_module.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace recsys {
namespace {

torch::nn::LayerNorm MakeLayerNorm(int64_t d, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(eps));
}

template <typename M>
void Add(HfNamedTensors* out, const std::string& name, const M& m) {
  out->emplace_back(name + ".weight", m->weight);
  out->emplace_back(name + ".bias", m->bias);
}

}  // namespace

ViTLayerImpl::ViTLayerImpl(const ViTConfig& c)
    : num_heads_(c.num_attention_heads),
      head_size_(c.hidden_size / c.num_attention_heads) {
  const int64_t d = c.hidden_size;
  layernorm_before =
      register_module("layernorm_before", MakeLayerNorm(d, c.layer_norm_eps));
  query = register_module("query", torch::nn::Linear(d, d));
  key = register_module("key", torch::nn::Linear(d, d));
  value = register_module("value", torch::nn::Linear(d, d));
  attention_output = register_module("attention_output", torch::nn::Linear(d, d));
  layernorm_after =
      register_module("layernorm_after", MakeLayerNorm(d, c.layer_norm_eps));
  intermediate = register_module("intermediate",
                                 torch::nn::Linear(d, c.intermediate_size));
  output = register_module("output", torch::nn::Linear(c.intermediate_size, d));
}

torch::Tensor ViTLayerImpl::forward(const torch::Tensor& x, bool cls_only) {
  const int64_t b = x.size(0);
  const int64_t t = x.size(1);
  const torch::Tensor normed = layernorm_before(x);
  const torch::Tensor q_in = cls_only ? normed.narrow(1, 0, 1) : normed;
  const torch::Tensor residual = cls_only ? x.narrow(1, 0, 1) : x;
  const int64_t tq = q_in.size(1);
  auto heads = [&](const torch::Tensor& y, int64_t len) {
    return y.view({b, len, num_heads_, head_size_}).transpose(1, 2);
  };
  const torch::Tensor q = heads(query(q_in), tq);
  const torch::Tensor k = heads(key(normed), t);
  const torch::Tensor v = heads(value(normed), t);
  const torch::Tensor probs = torch::softmax(
      torch::matmul(q, k.transpose(-1, -2)) /
          std::sqrt(static_cast<double>(head_size_)),
      -1);
  const torch::Tensor context =
      torch::matmul(probs, v).transpose(1, 2).reshape({b, tq, -1});
  const torch::Tensor h = attention_output(context) + residual;
  return h + output(torch::gelu(intermediate(layernorm_after(h))));
}

ViTImpl::ViTImpl(const ViTConfig& c) : config_(c) {
  const int64_t patches = (c.image_size / c.patch_size) * (c.image_size / c.patch_size);
  cls_token_ = register_parameter("cls_token", torch::zeros({1, 1, c.hidden_size}));
  position_embeddings_ = register_parameter(
      "position_embeddings", torch::zeros({1, patches + 1, c.hidden_size}));
  patch_projection = register_module(
      "patch_projection",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(c.num_channels, c.hidden_size,
                                                 c.patch_size)
                            .stride(c.patch_size)));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layers_.push_back(register_module(absl::StrCat("layer_", i), ViTLayer(c)));
  }
}

torch::Tensor ViTImpl::forward(const torch::Tensor& pixel_values) {
  TORCH_CHECK(pixel_values.dim() == 4 &&
                  pixel_values.size(1) == config_.num_channels &&
                  pixel_values.size(2) == config_.image_size &&
                  pixel_values.size(3) == config_.image_size,
              "pixel_values must be [B, ", config_.num_channels, ", ",
              config_.image_size, ", ", config_.image_size, "]");
  const int64_t b = pixel_values.size(0);
  torch::Tensor x = patch_projection(pixel_values).flatten(2).transpose(1, 2);
  x = torch::cat({cls_token_.expand({b, 1, -1}), x}, 1) + position_embeddings_;
  std::vector<torch::Tensor> states;
  states.reserve(layers_.size() + 1);
  states.push_back(x.select(1, 0));
  for (size_t i = 0; i < layers_.size(); ++i) {
    x = layers_[i]->forward(x, /*cls_only=*/i + 1 == layers_.size());
    states.push_back(x.select(1, 0));
  }
  return torch::stack(states, 1);
}

HfNamedTensors ViTImpl::HfParameters() const {
  HfNamedTensors out;
  out.emplace_back("embeddings.cls_token", cls_token_);
  out.emplace_back("embeddings.position_embeddings", position_embeddings_);
  Add(&out, "embeddings.patch_embeddings.projection", patch_projection);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const std::string p = absl::StrCat("encoder.layer.", i, ".");
    const ViTLayerImpl& l = *layers_[i];
    Add(&out, p + "layernorm_before", l.layernorm_before);
    Add(&out, p + "attention.attention.query", l.query);
    Add(&out, p + "attention.attention.key", l.key);
    Add(&out, p + "attention.attention.value", l.value);
    Add(&out, p + "attention.output.dense", l.attention_output);
    Add(&out, p + "layernorm_after", l.layernorm_after);
    Add(&out, p + "intermediate.dense", l.intermediate);
    Add(&out, p + "output.dense", l.output);
  }
  return out;
}

}  // namespace recsys
