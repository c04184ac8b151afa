#include "trainer/service/embedding_refresh.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "model/encoders/backbone_config.h"
#include "model/encoders/bert_text_encoder.h"
#include "model/encoders/image_io.h"
#include "model/encoders/vit_image_encoder.h"
#include "model/hidden_state_cache.h"
#include "model/items_table.h"
#include "model/model_version.h"
#include "model/nn/recommender.h"
#include "nlohmann/json.hpp"
#include "trainer/backbone/job_backbone.h"
#include "trainer/data/standin_text_cache.h"
#include "trainer/service/refresh_plan.h"

namespace recsys {
namespace {

// The hashed bag-of-words stand-in as a TextEncoder, rebuilt from a cache's
// own backbone_config.
class StandinTextEncoder : public TextEncoder {
 public:
  explicit StandinTextEncoder(const StandinTextOptions& o) : options_(o) {
    info_.name = absl::StrFormat("hashed-bow-standin-%dx%d", o.num_states - 1, o.hidden_size);
    info_.fingerprint = StandinBackboneFingerprint(o);
    info_.standin = true;
    info_.num_states = o.num_states;
    info_.hidden_size = o.hidden_size;
  }
  const BackboneInfo& info() const override { return info_; }
  absl::StatusOr<std::vector<float>> Encode(const std::vector<std::string>& texts) override {
    std::vector<float> out;
    out.reserve(texts.size() * options_.num_states * options_.hidden_size);
    for (const std::string& t : texts) {
      const std::vector<float> s = StandinTextStates(t, options_);
      out.insert(out.end(), s.begin(), s.end());
    }
    return out;
  }

 private:
  StandinTextOptions options_;
  BackboneInfo info_;
};

// The frozen backbone that wrote `cache`, able to encode new items.
absl::StatusOr<std::unique_ptr<TextEncoder>> BackboneOf(const HiddenStateCacheInfo& cache,
                                                        const EmbeddingRefreshOptions& o) {
  absl::StatusOr<StandinTextOptions> standin = StandinTextOptionsOf(cache);
  if (standin.ok()) return std::unique_ptr<TextEncoder>(new StandinTextEncoder(*standin));
  if (!absl::IsNotFound(standin.status())) return standin.status();
  if (absl::StartsWith(cache.backbone, "synthetic-")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "spec.refresh.text_cache: its backbone ", QuoteUserInput(cache.backbone),
        " is synthetic (random demo states, not computed from any content): it cannot encode "
        "new or changed items"));
  }
  if (o.vocab.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.refresh.vocab: the cache's backbone ", QuoteUserInput(cache.backbone),
        " is BERT-architecture; new items need its WordPiece vocabulary (and weights)"));
  }
  ASSIGN_OR_RETURN(BertTextEncoderOptions eo,
                   JobBertOptions("spec.refresh.backbone", o.vocab, o.weights, o.backbone, o.device));
  return CreateBertTextEncoder(eo);
}

// The frozen image backbone that wrote `cache`: a ViT whose architecture is
// the cache's backbone_config.
absl::StatusOr<std::unique_ptr<ImageEncoder>> ImageBackboneOf(const HiddenStateCacheInfo& cache,
                                                              const EmbeddingRefreshOptions& o) {
  ASSIGN_OR_RETURN(ViTImageEncoderOptions vo,
                   CacheViTOptions("spec.refresh.image_cache", cache, o.image_weights, o.device));
  return CreateViTImageEncoder(vo);
}

absl::Status CheckBackbone(const BackboneInfo& encoder, const ModalityConfig& m,
                           const HiddenStateCache& cache, int64_t parent_version) {
  if (encoder.fingerprint != m.backbone_fingerprint) {
    return absl::FailedPreconditionError(absl::StrCat(
        "spec.refresh: the ", m.modality, " backbone given (", QuoteUserInput(encoder.name),
        ", fingerprint ", QuoteUserInput(encoder.fingerprint), ") is not version ",
        parent_version, "'s (fingerprint ", QuoteUserInput(m.backbone_fingerprint),
        "): new items would get states its side network was not trained on"));
  }
  if (encoder.num_states != cache.num_states() || encoder.hidden_size != cache.hidden_size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "spec.refresh: the ", m.modality, " backbone's state shape is not the cache's"));
  }
  return absl::OkStatus();
}

absl::Status TorchError(const std::string& what, const c10::Error& e) {
  return absl::InternalError(absl::StrCat(what, ": ", e.what_without_backtrace()));
}

absl::Status Report(const EmbeddingRefreshOptions& o, const std::string& phase, int64_t done,
                    int64_t total) {
  if (!o.on_progress) return absl::OkStatus();
  return o.on_progress({phase, done, total});
}

// The parent's networks with its weights, in eval mode, on `device`.
absl::StatusOr<Recommender> LoadNetworks(const ModelVersion& parent, const torch::Device& device) {
  ASSIGN_OR_RETURN(Checkpoint weights, parent.ReadWeights());
  absl::flat_hash_map<std::string, const NamedTensor*> by_name;
  for (const NamedTensor& t : weights.tensors) by_name[t.name] = &t;
  try {
    Recommender model(RecommenderOptionsFor(parent.manifest().network));
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters(/*recurse=*/true)) {
      auto it = by_name.find(p.key());
      if (it == by_name.end()) {
        return absl::DataLossError(absl::StrCat(parent.dir(), ": ", kModelWeightsFile,
                                                " lacks the weight ", p.key()));
      }
      const NamedTensor& t = *it->second;
      if (t.shape != p.value().sizes().vec()) {
        return absl::DataLossError(absl::StrCat(parent.dir(), ": weight ", p.key(),
                                                " has the wrong shape"));
      }
      std::memcpy(p.value().data_ptr<float>(), t.values.data(), t.values.size() * sizeof(float));
    }
    model->to(device);
    model->eval();
    return model;
  } catch (const c10::Error& e) {
    return TorchError(absl::StrCat("building the networks of ", parent.dir()), e);
  }
}

}  // namespace

std::string EmbeddingRefreshResult::ToJson() const {
  nlohmann::json j = {{"version", version},
                      {"items", items},
                      {"reused", reused},
                      {"recomputed", recomputed},
                      {"removed", removed},
                      {"added", added},
                      {"changed", changed},
                      {"unknown", unknown},
                      {"reembedded", reembedded},
                      {"verified", verified},
                      {"max_verify_difference", max_verify_difference},
                      {"seconds", seconds},
                      {"encode_seconds", encode_seconds},
                      {"embed_seconds", embed_seconds},
                      {"text_encoded", text_encoded},
                      {"image_encoded", image_encoded}};
  if (!cache_out.empty()) j["text_cache"] = cache_out;
  if (!image_cache_out.empty()) j["image_cache"] = image_cache_out;
  return j.dump();
}

absl::StatusOr<EmbeddingRefreshResult> RunEmbeddingRefresh(const EmbeddingRefreshOptions& o) {
  const absl::Time start = absl::Now();
  if (o.version <= 0 || o.parent_version <= 0 || o.models_dir.empty()) {
    return absl::InvalidArgumentError(
        "embedding refresh: models_dir, parent_version and version are required");
  }
  if (o.batch_size < 1) return absl::InvalidArgumentError("batch_size must be >= 1");
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(o.device);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat("device: ", QuoteUserInput(o.device)));
  }
  at::set_num_threads(std::max(1, o.num_threads));

  // 1. Plan.
  RETURN_IF_ERROR(Report(o, "plan", 0, 1));
  ASSIGN_OR_RETURN(std::unique_ptr<ModelVersion> parent,
                   ModelVersion::Open(ModelVersionPath(o.models_dir, o.parent_version)));
  ASSIGN_OR_RETURN(ItemEmbeddings parent_items, parent->ReadItemEmbeddings());
  ASSIGN_OR_RETURN(std::vector<ItemTableRow> catalog, ReadItemTable(o.items_table));
  std::unique_ptr<HiddenStateCache> old_text, old_image;
  if (!o.text_cache.empty()) {
    ASSIGN_OR_RETURN(old_text, HiddenStateCache::Open(o.text_cache));
  }
  if (!o.image_cache.empty()) {
    ASSIGN_OR_RETURN(old_image, HiddenStateCache::Open(o.image_cache));
  }
  ASSIGN_OR_RETURN(std::vector<RefreshSideInput> sides,
                   RefreshSidesFor(parent->manifest(), catalog, old_text.get(), old_image.get(),
                                   o.images_table));
  std::vector<std::string> keys;
  keys.reserve(catalog.size());
  for (const ItemTableRow& r : catalog) keys.push_back(r.key);
  ASSIGN_OR_RETURN(RefreshPlan plan,
                   PlanRefresh(parent->manifest(), parent_items.keys, keys, std::move(sides)));
  const int64_t n = static_cast<int64_t>(plan.keys.size());
  LOG(INFO) << "refresh of version " << o.parent_version << " into " << o.version << ": " << n
            << " items; embeddings copied " << plan.reused << ", items encoded " << plan.recomputed
            << " (" << plan.added << " new, " << plan.changed << " changed, " << plan.unknown
            << " unknown), states reused but re-embedded " << plan.reembedded << "; removed "
            << plan.removed << (plan.removed_keys.empty() ? "" : " (e.g. ")
            << absl::StrJoin(plan.removed_keys, ", ") << (plan.removed_keys.empty() ? "" : ")");

  EmbeddingRefreshResult r;
  double encode_seconds = 0;
  std::vector<std::unique_ptr<HiddenStateCache>> caches;  // updated, per side
  for (RefreshSidePlan& side : plan.sides) {
    const ModalityConfig& mc = parent->manifest().network.modalities[side.config_index];
    const HiddenStateCache& old_cache = *side.cache;
    const bool image = side.modality == "image";
    const std::string& out_path = image ? o.image_cache_out : o.cache_out;
    if (out_path.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("embedding refresh: no output path for the ",
                                                     side.modality, " cache"));
    }
    (image ? r.image_encoded : r.text_encoded) = side.encoded;
    // 2. Encode what changed with the version's own frozen backbone.
    const int64_t states = old_cache.num_states();
    const int64_t hidden = old_cache.hidden_size();
    const int64_t per_row = states * hidden;
    std::vector<int64_t> slot(n, -1);
    std::vector<float> encoded;
    const absl::Time encode_start = absl::Now();
    if (side.encoded > 0) {
      std::unique_ptr<TextEncoder> text_encoder;
      std::unique_ptr<ImageEncoder> image_encoder;
      if (image) {
        ASSIGN_OR_RETURN(image_encoder, ImageBackboneOf(old_cache.info(), o));
        RETURN_IF_ERROR(CheckBackbone(image_encoder->info(), mc, old_cache, o.parent_version));
      } else {
        ASSIGN_OR_RETURN(text_encoder, BackboneOf(old_cache.info(), o));
        RETURN_IF_ERROR(CheckBackbone(text_encoder->info(), mc, old_cache, o.parent_version));
      }
      std::vector<int64_t> todo;
      for (int64_t i = 0; i < n; ++i) {
        if (side.cache_row[i] < 0) todo.push_back(i);
      }
      encoded.reserve(todo.size() * per_row);
      for (size_t begin = 0; begin < todo.size(); begin += o.batch_size) {
        const size_t end = std::min(todo.size(), begin + static_cast<size_t>(o.batch_size));
        std::vector<float> got;
        if (image) {
          std::vector<RgbImage> images;
          for (size_t k = begin; k < end; ++k) {
            absl::StatusOr<RgbImage> im = ReadImageFile(side.values[todo[k]]);
            if (!im.ok()) {
              return absl::InvalidArgumentError(absl::StrCat(
                  "spec.refresh.images_table: the image of ", QuoteUserInput(plan.keys[todo[k]]),
                  " does not decode: ", im.status().message()));
            }
            images.push_back(*std::move(im));
          }
          ASSIGN_OR_RETURN(got, image_encoder->Encode(images));
        } else {
          std::vector<std::string> texts;
          for (size_t k = begin; k < end; ++k) texts.push_back(side.values[todo[k]]);
          ASSIGN_OR_RETURN(got, text_encoder->Encode(texts));
        }
        if (static_cast<int64_t>(got.size()) != static_cast<int64_t>(end - begin) * per_row) {
          return absl::InternalError("the backbone returned the wrong number of states");
        }
        for (float x : got) {
          if (!std::isfinite(x)) return absl::InternalError("the backbone gave non-finite states");
        }
        for (size_t k = begin; k < end; ++k) slot[todo[k]] = static_cast<int64_t>(k);
        encoded.insert(encoded.end(), got.begin(), got.end());
        RETURN_IF_ERROR(Report(o, "encode " + side.modality, static_cast<int64_t>(end),
                               static_cast<int64_t>(todo.size())));
      }
    }
    encode_seconds += absl::ToDoubleSeconds(absl::Now() - encode_start);

    // 3. The updated cache: every item, reused rows straight from the old one.
    HiddenStateCacheInfo info = old_cache.info();
    uint32_t a = Crc32c(info.backbone_fingerprint, 0x2545F491u);
    for (int64_t i = 0; i < n; ++i) {
      a = Crc32c(plan.keys[i], a);
      a = Crc32c(absl::string_view(reinterpret_cast<const char*>(&side.content_fingerprints[i]), 8), a);
    }
    info.fingerprint = absl::StrFormat("refresh-%s-%08x", info.backbone_fingerprint, a);
    info.extra["refreshed_from"] = old_cache.info().fingerprint;
    RETURN_IF_ERROR(Report(o, "write " + side.modality + " cache", 0, n));
    RETURN_IF_ERROR(WriteHiddenStateCache(
        out_path, plan.keys,
        [&](int64_t row, float* out) -> absl::Status {
          if (side.cache_row[row] >= 0) return old_cache.Gather({side.cache_row[row]}, out);
          std::memcpy(out, encoded.data() + slot[row] * per_row, per_row * sizeof(float));
          return absl::OkStatus();
        },
        states, hidden, old_cache.dtype(), info, side.content_fingerprints));
    ASSIGN_OR_RETURN(std::unique_ptr<HiddenStateCache> written, HiddenStateCache::Open(out_path));
    caches.push_back(std::move(written));
  }

  // 4. Embed: the plan's rows, plus a sample of copied rows as a check.
  const absl::Time embed_start = absl::Now();
  ASSIGN_OR_RETURN(Recommender model, LoadNetworks(*parent, device));
  ASSIGN_OR_RETURN(std::vector<StateStandardization> standardization, parent->ReadStandardization());
  std::vector<const StateStandardization*> stats(plan.sides.size(), nullptr);
  for (size_t si = 0; si < plan.sides.size(); ++si) {
    const ModalityConfig& mc = parent->manifest().network.modalities[plan.sides[si].config_index];
    for (const StateStandardization& st : standardization) {
      if (st.modality == mc.modality) stats[si] = &st;
    }
    if (parent->manifest().network.standardize_states && stats[si] == nullptr) {
      return absl::DataLossError(absl::StrCat(parent->dir(), ": standardised states but no ",
                                              mc.modality, " statistics"));
    }
    if (stats[si] != nullptr &&
        static_cast<int64_t>(stats[si]->mean.size()) !=
            static_cast<int64_t>(mc.states.size()) * caches[si]->hidden_size()) {
      return absl::DataLossError(absl::StrCat(parent->dir(), ": ", mc.modality,
                                              " standardisation of the wrong shape"));
    }
  }
  std::vector<int64_t> to_embed, to_verify;
  for (int64_t i = 0; i < n; ++i) {
    if (plan.parent_row[i] < 0) {
      to_embed.push_back(i);
    } else if (static_cast<int64_t>(to_verify.size()) < o.verify_items) {
      to_verify.push_back(i);
    }
  }
  std::vector<int64_t> rows = to_embed;
  rows.insert(rows.end(), to_verify.begin(), to_verify.end());
  const int64_t d = parent_items.dim;
  std::vector<float> embedded(rows.size() * d);
  try {
    torch::NoGradGuard no_grad;
    for (size_t begin = 0; begin < rows.size(); begin += o.batch_size) {
      const size_t end = std::min(rows.size(), begin + static_cast<size_t>(o.batch_size));
      const int64_t b = static_cast<int64_t>(end - begin);
      // The updated caches' rows are the catalog's order.
      const std::vector<int64_t> cache_rows(rows.begin() + begin, rows.begin() + end);
      ItemInputs in;
      in.ids = torch::arange(b, torch::kLong).to(device);
      for (size_t si = 0; si < plan.sides.size(); ++si) {
        const ModalityConfig& mc = parent->manifest().network.modalities[plan.sides[si].config_index];
        const HiddenStateCache& cache = *caches[si];
        const int64_t hidden = cache.hidden_size();
        const int64_t per_row = cache.num_states() * hidden;
        const int64_t blocks = static_cast<int64_t>(mc.states.size());
        std::vector<float> full(static_cast<size_t>(b) * per_row);
        RETURN_IF_ERROR(cache.Gather(cache_rows, full.data()));
        torch::Tensor x = torch::empty({b, blocks, hidden}, torch::kFloat);
        float* dst = x.data_ptr<float>();
        for (int64_t r0 = 0; r0 < b; ++r0) {
          for (int64_t j = 0; j < blocks; ++j) {
            const float* src = full.data() + r0 * per_row + mc.states[j] * hidden;
            float* to = dst + (r0 * blocks + j) * hidden;
            std::memcpy(to, src, hidden * sizeof(float));
            if (stats[si] != nullptr) {
              for (int64_t h = 0; h < hidden; ++h) {
                to[h] = (to[h] - stats[si]->mean[j * hidden + h]) * stats[si]->inv_std[j * hidden + h];
              }
            }
          }
        }
        in.states.push_back(device.is_cpu() ? x : x.to(device));
      }
      torch::Tensor e = model->EmbedItems(in).to(torch::kCPU, torch::kFloat).contiguous();
      if (e.size(0) != b || e.size(1) != d) {
        return absl::InternalError("the side network's embeddings have the wrong shape");
      }
      if (!torch::isfinite(e).all().item<bool>()) {
        return absl::InternalError("the side network gave non-finite embeddings");
      }
      std::memcpy(embedded.data() + begin * d, e.data_ptr<float>(), b * d * sizeof(float));
      RETURN_IF_ERROR(Report(o, "embed", static_cast<int64_t>(end), static_cast<int64_t>(rows.size())));
    }
  } catch (const c10::Error& e) {
    return TorchError("embedding the refreshed items", e);
  }
  // The copied rows must be what these networks give for these states.
  double max_diff = 0;
  for (size_t k = 0; k < to_verify.size(); ++k) {
    const float* mine = embedded.data() + (to_embed.size() + k) * d;
    const float* theirs = parent_items.values.data() + plan.parent_row[to_verify[k]] * d;
    double scale = 1e-6;
    for (int64_t j = 0; j < d; ++j) scale = std::max(scale, std::fabs(static_cast<double>(theirs[j])));
    for (int64_t j = 0; j < d; ++j) {
      max_diff = std::max(max_diff, std::fabs(static_cast<double>(mine[j]) - theirs[j]) / scale);
    }
  }
  if (max_diff > 1e-3) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the version's networks do not reproduce its own embeddings of unchanged items "
        "(relative difference %.3g): the cache or the version is not what the version was made "
        "from; nothing was written", max_diff));
  }
  const double embed_seconds = absl::ToDoubleSeconds(absl::Now() - embed_start);

  // 5. The new version.
  RETURN_IF_ERROR(Report(o, "write version", 0, 1));
  ModelVersionContents v;
  v.manifest = parent->manifest();
  v.manifest.version = o.version;
  v.manifest.kind = "refresh";
  v.manifest.parent_version = o.parent_version;
  v.manifest.network.num_items = n;
  for (size_t si = 0; si < plan.sides.size(); ++si) {
    v.manifest.network.modalities[plan.sides[si].config_index].cache_fingerprint =
        caches[si]->info().fingerprint;
  }
  v.items.keys = plan.keys;
  v.items.dim = d;
  v.items.values.resize(static_cast<size_t>(n) * d);
  for (size_t k = 0; k < to_embed.size(); ++k) {
    std::memcpy(v.items.values.data() + to_embed[k] * d, embedded.data() + k * d, d * sizeof(float));
  }
  for (int64_t i = 0; i < n; ++i) {
    if (plan.parent_row[i] >= 0) {
      std::memcpy(v.items.values.data() + i * d, parent_items.values.data() + plan.parent_row[i] * d,
                  d * sizeof(float));
    }
  }
  ASSIGN_OR_RETURN(Checkpoint weights, parent->ReadWeights());
  v.weights = std::move(weights.tensors);
  v.weights.erase(std::remove_if(v.weights.begin(), v.weights.end(),
                                 [](const NamedTensor& t) {
                                   return absl::StartsWith(t.name, "state_standardization.");
                                 }),
                  v.weights.end());
  v.standardization = standardization;
  ASSIGN_OR_RETURN(std::vector<float> popularity, parent->ReadItemPopularity());
  if (!popularity.empty()) {
    absl::flat_hash_map<std::string, float> count_of;
    for (size_t i = 0; i < parent_items.keys.size(); ++i) count_of[parent_items.keys[i]] = popularity[i];
    v.item_popularity.resize(n, 0.0f);
    for (int64_t i = 0; i < n; ++i) {
      auto it = count_of.find(plan.keys[i]);
      if (it != count_of.end()) v.item_popularity[i] = it->second;
    }
  }
  nlohmann::json metrics = nlohmann::json::parse(parent->manifest().metrics_json, nullptr, false);
  if (!metrics.is_object()) metrics = nlohmann::json::object();
  r.version = o.version;
  r.items = n;
  r.reused = plan.reused;
  r.recomputed = plan.recomputed;
  r.removed = plan.removed;
  r.added = plan.added;
  r.changed = plan.changed;
  r.unknown = plan.unknown;
  r.reembedded = plan.reembedded;
  r.verified = static_cast<int64_t>(to_verify.size());
  r.max_verify_difference = max_diff;
  r.encode_seconds = encode_seconds;
  r.embed_seconds = embed_seconds;
  if (!o.text_cache.empty()) r.cache_out = o.cache_out;
  if (!o.image_cache.empty()) r.image_cache_out = o.image_cache_out;
  // The parent's validation/test figures stay (same networks); the refresh's
  // counts go beside them.
  metrics["refresh"] = {{"parent_version", o.parent_version}, {"items", n},
                        {"reused", plan.reused},           {"recomputed", plan.recomputed},
                        {"removed", plan.removed},         {"added", plan.added},
                        {"changed", plan.changed}};
  v.manifest.metrics_json = metrics.dump();
  v.user_encoder_source = JoinPath(parent->dir(), kUserEncoderFile);
  ASSIGN_OR_RETURN(r.version_dir, WriteModelVersion(o.models_dir, v));
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  LOG(INFO) << "refresh wrote " << r.version_dir << " in " << absl::StrFormat("%.2f", r.seconds)
            << " s (encode " << absl::StrFormat("%.2f", encode_seconds) << " s, embed "
            << absl::StrFormat("%.2f", embed_seconds) << " s)";
  return r;
}

}  // namespace recsys
