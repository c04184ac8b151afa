// The sequential recommender: an item tower (IISAN side network over cached
// states, or an ID embedding table for the SASRec baseline) and the
// SASRec-style user encoder. The popularity baseline has no module.
//
// Parameter names (the checkpoint's tensor names) are the module paths:
//   item_encoder.intra_text.blocks.<i>.{down,up}.{weight,bias}
//   item_encoder.intra_<m>.gates.<i>.weight, item_encoder.inter.*,
//   item_encoder.head_{text,image,inter}.*, item_encoder.fuse.*   (IISAN)
//   item_embedding.weight                                         (SASRec)
//   user_encoder.positions.weight, user_encoder.ln_in.*,
//   user_encoder.blocks.<i>.{qkv,out,ffn1,ffn2,ln1,ln2}.*
#ifndef RECSYS_MODEL_NN_RECOMMENDER_H_
#define RECSYS_MODEL_NN_RECOMMENDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "model/nn/network_config.h"
#include "model/nn/side_network.h"
#include "model/nn/user_encoder.h"

namespace recsys {

enum class ModelKind { kIisan, kSasrec, kPopularity };

absl::StatusOr<ModelKind> ParseModelKind(const std::string& name);
std::string ModelKindName(ModelKind kind);

struct RecommenderOptions {
  ModelKind kind = ModelKind::kIisan;  // kIisan or kSasrec
  int64_t num_items = 0;               // kSasrec: rows of the ID table
  IisanItemEncoderOptions item_encoder;  // kIisan
  UserEncoderOptions user_encoder;
};

// What the item tower reads for a set of items.
struct ItemInputs {
  torch::Tensor ids;                  // [U] int64 dense ids
  std::vector<torch::Tensor> states;  // per modality [U, K_m, D_m] (kIisan)
};

class RecommenderImpl : public torch::nn::Module {
 public:
  explicit RecommenderImpl(const RecommenderOptions& options);
  // [U, d] item embeddings.
  torch::Tensor EmbedItems(const ItemInputs& inputs);
  // seq: [B, L, d] item embeddings (left-padded), valid: [B, L] -> [B, L, d].
  torch::Tensor EncodeUsers(const torch::Tensor& seq, const torch::Tensor& valid);
  // The packed form (UserEncoderImpl::ForwardPacked): [R, L, d].
  torch::Tensor EncodeUsersPacked(const torch::Tensor& seq, const torch::Tensor& valid,
                                  const torch::Tensor& positions, const torch::Tensor& allowed,
                                  const DropoutKey* dropout = nullptr);

  std::vector<torch::Tensor> ItemTowerParameters();
  std::vector<torch::Tensor> UserEncoderParameters();
  const RecommenderOptions& options() const { return options_; }

 private:
  RecommenderOptions options_;
  IisanItemEncoder item_encoder_{nullptr};
  torch::nn::Embedding item_embedding_{nullptr};
  UserEncoder user_encoder_{nullptr};
};
TORCH_MODULE(Recommender);

// The networks a NetworkConfig describes (model/nn/network_config.h), so
// every reader builds exactly what the writer trained. REQUIRES: a config
// that passed ValidateNetworkConfig.
UserEncoderOptions UserEncoderOptionsFor(const NetworkConfig& config);
RecommenderOptions RecommenderOptionsFor(const NetworkConfig& config);

}  // namespace recsys

#endif  // RECSYS_MODEL_NN_RECOMMENDER_H_
