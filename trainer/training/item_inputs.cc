#include "trainer/training/item_inputs.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace recsys {

IisanItemEncoderOptions ItemEncoderOptionsFor(const ItemStateStore& store,
                                              int64_t bottleneck,
                                              int64_t embedding_dim,
                                              bool inter_path) {
  IisanItemEncoderOptions o;
  for (int m = 0; m < store.num_modalities(); ++m) {
    o.modalities.push_back({store.modality(m), store.num_blocks(m), store.hidden_size(m)});
  }
  o.bottleneck = bottleneck;
  o.embedding_dim = embedding_dim;
  o.inter_path = inter_path;
  return o;
}

std::vector<ModalityConfig> ModalityConfigsFor(const ItemStateStore& store) {
  std::vector<ModalityConfig> out;
  for (int m = 0; m < store.num_modalities(); ++m) {
    ModalityConfig c;
    c.modality = store.modality(m);
    c.hidden_size = store.hidden_size(m);
    c.states.assign(store.state_indices(m).begin(), store.state_indices(m).end());
    c.backbone = store.info(m).backbone;
    c.cache_fingerprint = store.info(m).fingerprint;
    c.standin = store.info(m).standin;
    out.push_back(std::move(c));
  }
  return out;
}

absl::StatusOr<ItemInputs> GatherItemInputs(const ItemStateStore* store,
                                            const std::vector<int64_t>& ids,
                                            const torch::Device& device) {
  ItemInputs in;
  const int64_t n = static_cast<int64_t>(ids.size());
  try {
    in.ids = torch::from_blob(const_cast<int64_t*>(ids.data()), {n}, torch::kLong)
                 .to(device, /*non_blocking=*/false, /*copy=*/true);
    if (store != nullptr) {
      for (int m = 0; m < store->num_modalities(); ++m) {
        torch::Tensor host = torch::empty({n, store->num_blocks(m), store->hidden_size(m)},
                                          torch::kFloat);
        RETURN_IF_ERROR(store->Gather(m, ids, host.data_ptr<float>()));
        in.states.push_back(device.is_cpu() ? host : host.to(device));
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("gathering item inputs: ", e.what_without_backtrace()));
  }
  return in;
}

}  // namespace recsys
