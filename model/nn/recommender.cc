#include "model/nn/recommender.h"

#include "absl/strings/str_cat.h"

namespace recsys {

absl::StatusOr<ModelKind> ParseModelKind(const std::string& name) {
  if (name == "iisan") return ModelKind::kIisan;
  if (name == "sasrec") return ModelKind::kSasrec;
  if (name == "popularity") return ModelKind::kPopularity;
  return absl::InvalidArgumentError(
      absl::StrCat("model \"", name, "\": expected iisan, sasrec or popularity"));
}

std::string ModelKindName(ModelKind kind) {
  switch (kind) {
    case ModelKind::kIisan:
      return "iisan";
    case ModelKind::kSasrec:
      return "sasrec";
    case ModelKind::kPopularity:
      return "popularity";
  }
  return "?";
}

RecommenderImpl::RecommenderImpl(const RecommenderOptions& o) : options_(o) {
  TORCH_CHECK(o.kind != ModelKind::kPopularity, "popularity has no module");
  if (o.kind == ModelKind::kIisan) {
    IisanItemEncoderOptions enc = o.item_encoder;
    enc.embedding_dim = o.user_encoder.dim();
    item_encoder_ = register_module("item_encoder", IisanItemEncoder(enc));
  } else {
    TORCH_CHECK(o.num_items > 0, "SASRec needs num_items > 0");
    item_embedding_ = register_module(
        "item_embedding", torch::nn::Embedding(o.num_items, o.user_encoder.dim()));
    torch::NoGradGuard no_grad;
    item_embedding_->weight.normal_(0.0, 0.1);
  }
  user_encoder_ = register_module("user_encoder", UserEncoder(o.user_encoder));
}

torch::Tensor RecommenderImpl::EmbedItems(const ItemInputs& in) {
  if (options_.kind == ModelKind::kIisan) return item_encoder_->forward(in.states);
  return item_embedding_->forward(in.ids);
}

torch::Tensor RecommenderImpl::EncodeUsers(const torch::Tensor& seq,
                                           const torch::Tensor& valid) {
  return user_encoder_->forward(seq, valid);
}

torch::Tensor RecommenderImpl::EncodeUsersPacked(const torch::Tensor& seq,
                                                 const torch::Tensor& valid,
                                                 const torch::Tensor& positions,
                                                 const torch::Tensor& allowed,
                                                 const DropoutKey* dropout) {
  return user_encoder_->ForwardPacked(seq, valid, positions, allowed, dropout);
}

std::vector<torch::Tensor> RecommenderImpl::ItemTowerParameters() {
  return options_.kind == ModelKind::kIisan ? item_encoder_->parameters()
                                            : item_embedding_->parameters();
}

std::vector<torch::Tensor> RecommenderImpl::UserEncoderParameters() {
  return user_encoder_->parameters();
}

UserEncoderOptions UserEncoderOptionsFor(const NetworkConfig& c) {
  return UserEncoderOptions()
      .dim(c.embedding_dim)
      .num_heads(c.num_heads)
      .num_layers(c.num_layers)
      .ffn_dim(c.ffn_dim)
      .max_len(c.max_len)
      .dropout(c.dropout);
}

RecommenderOptions RecommenderOptionsFor(const NetworkConfig& c) {
  RecommenderOptions o;
  o.kind = c.model == "sasrec" ? ModelKind::kSasrec : ModelKind::kIisan;
  o.num_items = c.num_items;
  o.user_encoder = UserEncoderOptionsFor(c);
  for (const ModalityConfig& m : c.modalities) {
    o.item_encoder.modalities.push_back(
        {m.modality, static_cast<int64_t>(m.states.size()), m.hidden_size});
  }
  o.item_encoder.bottleneck = c.bottleneck;
  o.item_encoder.embedding_dim = c.embedding_dim;
  o.item_encoder.inter_path = c.inter_path;
  return o;
}

}  // namespace recsys
