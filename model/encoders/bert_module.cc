#include "model/encoders/bert_module.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace recsys {
namespace {

torch::nn::LayerNorm MakeLayerNorm(int64_t d, double eps) {
  return torch::nn::LayerNorm(
      torch::nn::LayerNormOptions({d}).eps(eps).elementwise_affine(true));
}

void AddLinear(HfNamedTensors* out, const std::string& name,
               const torch::nn::Linear& m) {
  out->emplace_back(name + ".weight", m->weight);
  out->emplace_back(name + ".bias", m->bias);
}

void AddLayerNorm(HfNamedTensors* out, const std::string& name,
                  const torch::nn::LayerNorm& m) {
  out->emplace_back(name + ".weight", m->weight);
  out->emplace_back(name + ".bias", m->bias);
}

}  // namespace

BertLayerImpl::BertLayerImpl(const BertConfig& c)
    : num_heads_(c.num_attention_heads),
      head_size_(c.hidden_size / c.num_attention_heads) {
  const int64_t d = c.hidden_size;
  query = register_module("query", torch::nn::Linear(d, d));
  key = register_module("key", torch::nn::Linear(d, d));
  value = register_module("value", torch::nn::Linear(d, d));
  attention_output = register_module("attention_output", torch::nn::Linear(d, d));
  attention_layer_norm = register_module("attention_layer_norm",
                                         MakeLayerNorm(d, c.layer_norm_eps));
  intermediate = register_module("intermediate",
                                 torch::nn::Linear(d, c.intermediate_size));
  output = register_module("output", torch::nn::Linear(c.intermediate_size, d));
  output_layer_norm =
      register_module("output_layer_norm", MakeLayerNorm(d, c.layer_norm_eps));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& x,
                                     const torch::Tensor& additive_mask,
                                     bool cls_only) {
  const int64_t b = x.size(0);
  const int64_t t = x.size(1);
  const torch::Tensor q_in = cls_only ? x.narrow(1, 0, 1) : x;
  const int64_t tq = q_in.size(1);
  auto heads = [&](const torch::Tensor& y, int64_t len) {
    return y.view({b, len, num_heads_, head_size_}).transpose(1, 2);
  };
  const torch::Tensor q = heads(query(q_in), tq);
  const torch::Tensor k = heads(key(x), t);
  const torch::Tensor v = heads(value(x), t);
  torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2)) /
                         std::sqrt(static_cast<double>(head_size_));
  scores = scores + additive_mask;
  const torch::Tensor probs = torch::softmax(scores, -1);
  const torch::Tensor context =
      torch::matmul(probs, v).transpose(1, 2).reshape({b, tq, -1});
  const torch::Tensor attended =
      attention_layer_norm(attention_output(context) + q_in);
  const torch::Tensor ffn = output(torch::gelu(intermediate(attended)));
  return output_layer_norm(ffn + attended);
}

BertImpl::BertImpl(const BertConfig& c) : config_(c) {
  word_embeddings = register_module(
      "word_embeddings", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  position_embeddings = register_module(
      "position_embeddings",
      torch::nn::Embedding(c.max_position_embeddings, c.hidden_size));
  token_type_embeddings = register_module(
      "token_type_embeddings",
      torch::nn::Embedding(c.type_vocab_size, c.hidden_size));
  embeddings_layer_norm = register_module(
      "embeddings_layer_norm", MakeLayerNorm(c.hidden_size, c.layer_norm_eps));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layers_.push_back(
        register_module(absl::StrCat("layer_", i), BertLayer(c)));
  }
}

torch::Tensor BertImpl::Run(const torch::Tensor& input_ids,
                            const torch::Tensor& attention_mask,
                            bool cls_only_last,
                            std::vector<torch::Tensor>* states) {
  const int64_t t = input_ids.size(1);
  TORCH_CHECK(t <= config_.max_position_embeddings, "sequence length ", t,
              " exceeds max_position_embeddings ",
              config_.max_position_embeddings);
  TORCH_CHECK(attention_mask.sizes() == input_ids.sizes(),
              "attention_mask must have the shape of input_ids");
  const auto positions =
      torch::arange(t, input_ids.options().dtype(torch::kLong));
  torch::Tensor x = word_embeddings(input_ids) +
                    position_embeddings(positions).unsqueeze(0) +
                    token_type_embeddings->weight[0];
  x = embeddings_layer_norm(x);
  // Padding gets a large negative score; finite so that a row of padding
  // never turns into NaN.
  const torch::Tensor additive_mask =
      ((1.0 - attention_mask.to(x.scalar_type())) * -1e9)
          .unsqueeze(1)
          .unsqueeze(1);
  if (states != nullptr) states->push_back(x.select(1, 0));
  for (size_t i = 0; i < layers_.size(); ++i) {
    const bool last = i + 1 == layers_.size();
    x = layers_[i]->forward(x, additive_mask, /*cls_only=*/last && cls_only_last);
    if (states != nullptr) states->push_back(x.select(1, 0));
  }
  return x;
}

torch::Tensor BertImpl::forward(const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask) {
  std::vector<torch::Tensor> states;
  states.reserve(layers_.size() + 1);
  Run(input_ids, attention_mask, /*cls_only_last=*/true, &states);
  return torch::stack(states, 1);
}

torch::Tensor BertImpl::last_hidden_state(const torch::Tensor& input_ids,
                                          const torch::Tensor& attention_mask) {
  return Run(input_ids, attention_mask, /*cls_only_last=*/false, nullptr);
}

HfNamedTensors BertImpl::HfParameters() const {
  HfNamedTensors out;
  out.emplace_back("embeddings.word_embeddings.weight", word_embeddings->weight);
  out.emplace_back("embeddings.position_embeddings.weight",
                   position_embeddings->weight);
  out.emplace_back("embeddings.token_type_embeddings.weight",
                   token_type_embeddings->weight);
  AddLayerNorm(&out, "embeddings.LayerNorm", embeddings_layer_norm);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const std::string p = absl::StrCat("encoder.layer.", i, ".");
    const BertLayerImpl& l = *layers_[i];
    AddLinear(&out, p + "attention.self.query", l.query);
    AddLinear(&out, p + "attention.self.key", l.key);
    AddLinear(&out, p + "attention.self.value", l.value);
    AddLinear(&out, p + "attention.output.dense", l.attention_output);
    AddLayerNorm(&out, p + "attention.output.LayerNorm", l.attention_layer_norm);
    AddLinear(&out, p + "intermediate.dense", l.intermediate);
    AddLinear(&out, p + "output.dense", l.output);
    AddLayerNorm(&out, p + "output.LayerNorm", l.output_layer_norm);
  }
  return out;
}

}  // namespace recsys
