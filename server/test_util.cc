#include "server/test_util.h"

#include <cstdlib>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/test_paths.h"
#include "gtest/gtest.h"
#include "model/model_version.h"

namespace recsys {

UserEncoder ExportTestVersion(const std::string& base, int64_t number,
                              std::vector<float>* embeddings) {
  torch::manual_seed(number);
  UserEncoder encoder(UserEncoderOptions()
                          .dim(kTestDim)
                          .num_heads(2)
                          .num_layers(1)
                          .ffn_dim(16)
                          .max_len(kTestMaxLen));
  encoder->eval();
  ModelVersionContents v;
  v.manifest.version = number;
  NetworkConfig& n = v.manifest.network;
  n.model = "sasrec";
  n.num_items = 5;
  n.embedding_dim = kTestDim;
  n.max_len = kTestMaxLen;
  n.num_heads = 2;
  n.num_layers = 1;
  n.ffn_dim = 16;
  v.items.keys = {"a", "b", "c", "d", "e"};
  v.items.dim = kTestDim;
  torch::Tensor emb = torch::randn({5, kTestDim});
  v.items.values.assign(emb.data_ptr<float>(), emb.data_ptr<float>() + 5 * kTestDim);
  if (embeddings != nullptr) *embeddings = v.items.values;
  for (const auto& p : encoder->named_parameters()) {
    torch::Tensor t = p.value().contiguous();
    v.weights.push_back({kUserEncoderPrefix + p.key(), t.sizes().vec(),
                         std::vector<float>(t.data_ptr<float>(),
                                            t.data_ptr<float>() + t.numel())});
  }
  absl::StatusOr<std::string> dir = WriteModelVersion(base, v);
  EXPECT_TRUE(dir.ok()) << dir.status();
  return encoder;
}

std::string FreshTestDir(const std::string& name) {
  const std::string dir = TestTempPath(name);
  if (!RemoveRecursively(dir).ok()) ADD_FAILURE() << "cannot clear " << dir;
  return dir;
}

}  // namespace recsys
