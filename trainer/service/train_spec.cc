#include "trainer/service/train_spec.h"

namespace recsys {

v1::TrainJobSpec TrainSpecWithDefaults(const v1::TrainJobSpec& spec) {
  v1::TrainJobSpec t = spec;
  if (t.model().empty()) t.set_model("iisan");
  if (t.epochs() == 0) t.set_epochs(10);
  if (t.patience() == 0) t.set_patience(3);
  if (t.batch_size() == 0) t.set_batch_size(64);
  if (t.max_len() == 0) t.set_max_len(10);
  if (t.embedding_dim() == 0) t.set_embedding_dim(64);
  if (t.bottleneck() == 0) t.set_bottleneck(64);
  if (t.ffn_dim() == 0) t.set_ffn_dim(256);
  if (t.seed() == 0) t.set_seed(42);
  if (t.layer_mode().empty()) t.set_layer_mode("every_second");
  if (t.num_groups() == 0) t.set_num_groups(6);
  if (t.learning_rate() == 0) t.set_learning_rate(1e-3);
  return t;
}

}  // namespace recsys
