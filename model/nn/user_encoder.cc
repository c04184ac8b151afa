#include "model/nn/user_encoder.h"

#include <cmath>
#include <limits>
#include <string>

#include "model/nn/fused_block.h"

namespace recsys {

TransformerBlockImpl::TransformerBlockImpl(const UserEncoderOptions& o) : options_(o) {
  TORCH_CHECK(o.dim() % o.num_heads() == 0, "dim ", o.dim(),
              " must be divisible by num_heads ", o.num_heads());
  qkv_ = register_module("qkv", torch::nn::Linear(o.dim(), 3 * o.dim()));
  out_ = register_module("out", torch::nn::Linear(o.dim(), o.dim()));
  ln1_ = register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim()})));
  ffn1_ = register_module("ffn1", torch::nn::Linear(o.dim(), o.ffn_dim()));
  ffn2_ = register_module("ffn2", torch::nn::Linear(o.ffn_dim(), o.dim()));
  ln2_ = register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim()})));
  dropout_ = register_module("dropout", torch::nn::Dropout(o.dropout()));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x,
                                            const torch::Tensor& allowed,
                                            const DropoutKey* keyed) {
  const double p = options_.dropout();
  if (keyed != nullptr && is_training() && options_.fused_cpu_training()) {
    const FusedBlockWeights w{qkv_->weight,  qkv_->bias,  out_->weight,  out_->bias,
                              ln1_->weight,  ln1_->bias,  ffn1_->weight, ffn1_->bias,
                              ffn2_->weight, ffn2_->bias, ln2_->weight,  ln2_->bias};
    if (FusedBlockApplies(x, allowed, w)) {
      return FusedBlockForward(x, allowed, w, options_.num_heads(), p, *keyed);
    }
  }
  auto drop = [&](const torch::Tensor& t, uint64_t site) {
    if (keyed == nullptr || !is_training()) return dropout_(t);
    return KeyedDropout(t, p, keyed->Site(site));
  };
  const int64_t b = x.size(0), l = x.size(1), h = options_.num_heads();
  const int64_t hd = options_.dim() / h;
  // [B, L, 3, H, hd] -> 3 x [B, H, L, hd]
  auto qkv = qkv_(x).view({b, l, 3, h, hd}).permute({2, 0, 3, 1, 4});
  torch::Tensor q = qkv[0], k = qkv[1], v = qkv[2];
  torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(1.0 * hd);
  scores = scores.masked_fill(allowed.unsqueeze(1).logical_not(),
                              -std::numeric_limits<float>::infinity());
  torch::Tensor attn = drop(torch::softmax(scores.to(torch::kFloat), -1).to(v.scalar_type()), 0);
  torch::Tensor ctx = torch::matmul(attn, v).permute({0, 2, 1, 3}).reshape({b, l, -1});
  torch::Tensor y = ln1_(x + drop(out_(ctx), 1));
  return ln2_(y + drop(ffn2_(drop(torch::gelu(ffn1_(y)), 2)), 3));
}

torch::Tensor TransformerBlockImpl::ForwardLast(const torch::Tensor& x,
                                                const torch::Tensor& allowed_last) {
  const int64_t b = x.size(0), l = x.size(1), h = options_.num_heads();
  const int64_t d = options_.dim(), hd = d / h;
  // qkv_'s rows are [q | k | v]: the query from the last position only, keys
  // and values from all of them.
  const torch::Tensor& w = qkv_->weight;
  const torch::Tensor& bias = qkv_->bias;
  torch::Tensor last = x.select(1, l - 1);  // [B, D]
  torch::Tensor q = torch::linear(last, w.slice(0, 0, d), bias.slice(0, 0, d)).view({b, h, 1, hd});
  // [B, L, 2, H, hd] -> 2 x [B, H, L, hd]
  auto kv = torch::linear(x, w.slice(0, d, 3 * d), bias.slice(0, d, 3 * d))
                .view({b, l, 2, h, hd})
                .permute({2, 0, 3, 1, 4});
  torch::Tensor k = kv[0], v = kv[1];
  torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(1.0 * hd);  // [B, H, 1, L]
  scores = scores.masked_fill(allowed_last.view({b, 1, 1, l}).logical_not(),
                              -std::numeric_limits<float>::infinity());
  torch::Tensor attn = dropout_(torch::softmax(scores.to(torch::kFloat), -1).to(v.scalar_type()));
  torch::Tensor ctx = torch::matmul(attn, v).reshape({b, d});  // [B, H, 1, hd] -> [B, D]
  torch::Tensor y = ln1_(last + dropout_(out_(ctx)));
  return ln2_(y + dropout_(ffn2_(dropout_(torch::gelu(ffn1_(y))))));
}

UserEncoderImpl::UserEncoderImpl(const UserEncoderOptions& o) : options_(o) {
  positions_ = register_module("positions", torch::nn::Embedding(o.max_len(), o.dim()));
  {
    torch::NoGradGuard no_grad;
    positions_->weight.normal_(0.0, 0.02);
  }
  ln_in_ = register_module("ln_in", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim()})));
  dropout_ = register_module("dropout", torch::nn::Dropout(o.dropout()));
  auto blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.num_layers(); ++i) {
    blocks_.push_back(TransformerBlock(o));
    blocks->push_back(blocks_.back());
  }
}

torch::Tensor UserEncoderImpl::EmbedLeftPadded(const torch::Tensor& items,
                                               const torch::Tensor& valid) {
  TORCH_CHECK(items.dim() == 3 && items.size(2) == options_.dim(),
              "user encoder expects [B, L, ", options_.dim(), "], got ", items.sizes());
  const int64_t l = items.size(1);
  TORCH_CHECK(l <= options_.max_len(), "sequence length ", l, " > max_len ",
              options_.max_len());
  TORCH_CHECK(valid.sizes() == items.sizes().slice(0, 2), "valid mask must be [B, L]");
  // Left-padded: the last position is max_len - 1.
  torch::Tensor pos = torch::arange(options_.max_len() - l, options_.max_len(),
                                    torch::TensorOptions().dtype(torch::kLong).device(items.device()));
  torch::Tensor x = items + positions_(pos).unsqueeze(0);
  return dropout_(ln_in_(x)) * valid.unsqueeze(-1).to(x.scalar_type());
}

torch::Tensor UserEncoderImpl::CausalAllowed(const torch::Tensor& valid) {
  const int64_t l = valid.size(1);
  const auto bools = torch::TensorOptions().dtype(torch::kBool).device(valid.device());
  torch::Tensor causal = torch::ones({l, l}, bools).tril();
  torch::Tensor self = torch::eye(l, bools);
  return causal.unsqueeze(0) & (valid.unsqueeze(1) | self.unsqueeze(0));
}

torch::Tensor UserEncoderImpl::forward(const torch::Tensor& items,
                                       const torch::Tensor& valid) {
  torch::Tensor x = EmbedLeftPadded(items, valid);
  const torch::Tensor allowed = CausalAllowed(valid);
  for (auto& block : blocks_) x = block->forward(x, allowed);
  return x;
}

torch::Tensor UserEncoderImpl::ForwardPacked(const torch::Tensor& items,
                                             const torch::Tensor& valid,
                                             const torch::Tensor& positions,
                                             const torch::Tensor& allowed,
                                             const DropoutKey* keyed) {
  TORCH_CHECK(items.dim() == 3 && items.size(2) == options_.dim(),
              "user encoder expects [R, L, ", options_.dim(), "], got ", items.sizes());
  const int64_t l = items.size(1);
  TORCH_CHECK(l <= options_.max_len(), "row length ", l, " > max_len ", options_.max_len());
  TORCH_CHECK(valid.sizes() == items.sizes().slice(0, 2) &&
                  positions.sizes() == items.sizes().slice(0, 2),
              "valid and positions must be [R, L]");
  TORCH_CHECK(allowed.dim() == 3 && allowed.size(0) == items.size(0) && allowed.size(1) == l &&
                  allowed.size(2) == l,
              "allowed must be [R, L, L], got ", allowed.sizes());
  torch::Tensor x = items + positions_(positions);
  if (keyed == nullptr || !is_training()) {
    x = dropout_(ln_in_(x)) * valid.unsqueeze(-1).to(x.scalar_type());
    for (auto& block : blocks_) x = block->forward(x, allowed);
    return x;
  }
  // Site 0: the input; block i: sites 1 + i (each block mixes its own four).
  x = KeyedDropout(ln_in_(x), options_.dropout(), keyed->Site(0)) *
      valid.unsqueeze(-1).to(x.scalar_type());
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const DropoutKey block_key = keyed->Site(1 + i);
    x = blocks_[i]->forward(x, allowed, &block_key);
  }
  return x;
}

torch::Tensor UserEncoderImpl::ForwardLast(const torch::Tensor& items,
                                           const torch::Tensor& valid) {
  const int64_t l = items.dim() == 3 ? items.size(1) : 0;
  TORCH_CHECK(l >= 1, "user encoder: ForwardLast needs at least one position, got ",
              items.sizes());
  torch::Tensor x = EmbedLeftPadded(items, valid);
  if (blocks_.empty()) return x.select(1, l - 1);
  // The same mask as forward's; the last block needs only its last row,
  // which is every valid position and the last one itself.
  torch::Tensor allowed_last = valid.clone();
  allowed_last.select(1, l - 1).fill_(true);
  if (blocks_.size() > 1) {
    const torch::Tensor allowed = CausalAllowed(valid);
    for (size_t i = 0; i + 1 < blocks_.size(); ++i) x = blocks_[i]->forward(x, allowed);
  }
  return blocks_.back()->ForwardLast(x, allowed_last);
}

}  // namespace recsys
