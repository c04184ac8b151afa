// A BERT encoder (Hugging Face BertModel, inference only) as a LibTorch
// module that returns the CLS vector of every hidden state. Post-LN blocks,
// erf GELU, additive attention mask for padding. Includes LibTorch: the
// LibTorch-free entry point is bert_text_encoder.h.
//
// Thread-safety: forward() mutates nothing and may run concurrently under
// InferenceMode; loading weights must not overlap with it.
#ifndef RECSYS_MODEL_ENCODERS_BERT_MODULE_H_
#define RECSYS_MODEL_ENCODERS_BERT_MODULE_H_

#include <torch/torch.h>

#include "model/encoders/backbone_config.h"
#include "model/encoders/module_weights.h"

namespace recsys {

// One encoder layer; submodule names map to HF names in HfParameters().
class BertLayerImpl : public torch::nn::Module {
 public:
  BertLayerImpl(const BertConfig& config);
  // x: [B, T, D]; additive_mask: [B, 1, 1, T]. With `cls_only`, only the
  // first position is computed (as query) and [B, 1, D] returned: the last
  // layer needs no other output.
  torch::Tensor forward(const torch::Tensor& x,
                        const torch::Tensor& additive_mask, bool cls_only);

  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
  torch::nn::Linear attention_output{nullptr};
  torch::nn::LayerNorm attention_layer_norm{nullptr};
  torch::nn::Linear intermediate{nullptr}, output{nullptr};
  torch::nn::LayerNorm output_layer_norm{nullptr};

 private:
  int64_t num_heads_;
  int64_t head_size_;
};
TORCH_MODULE(BertLayer);

class BertImpl : public torch::nn::Module {
 public:
  explicit BertImpl(const BertConfig& config);

  // input_ids, attention_mask: [B, T] int64 (mask 1 = token, 0 = padding),
  // T <= max_position_embeddings. Token types are all 0 (single segment).
  // Returns [B, num_hidden_layers + 1, hidden_size] float CLS states.
  torch::Tensor forward(const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask);
  // The last layer's output at every position: [B, T, hidden_size] (for
  // mean pooling; positions under padding hold values to be masked out).
  torch::Tensor last_hidden_state(const torch::Tensor& input_ids,
                                  const torch::Tensor& attention_mask);

  // Every parameter under its HF name without the "bert." prefix
  // ("encoder.layer.3.attention.self.query.weight", ...).
  HfNamedTensors HfParameters() const;
  const BertConfig& config() const { return config_; }

 private:
  // Embeddings + the layers; the last layer computes every position unless
  // `cls_only_last`. `states` (may be null) receives each state's CLS row.
  torch::Tensor Run(const torch::Tensor& input_ids,
                    const torch::Tensor& attention_mask, bool cls_only_last,
                    std::vector<torch::Tensor>* states);

  BertConfig config_;
  torch::nn::Embedding word_embeddings{nullptr};
  torch::nn::Embedding position_embeddings{nullptr};
  torch::nn::Embedding token_type_embeddings{nullptr};
  torch::nn::LayerNorm embeddings_layer_norm{nullptr};
  std::vector<BertLayer> layers_;
};
TORCH_MODULE(Bert);

}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_BERT_MODULE_H_
