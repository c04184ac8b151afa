#include "model/encoders/bert_text_encoder.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "model/encoders/bert_module.h"
#include "model/encoders/torch_util.h"
#include "model/encoders/wordpiece_tokenizer.h"

namespace recsys {
namespace {

class BertTextEncoder : public TextEncoder {
 public:
  BertTextEncoder(std::unique_ptr<WordPieceTokenizer> tokenizer, Bert model,
                  torch::Device device, int batch_size, BackboneInfo info)
      : tokenizer_(std::move(tokenizer)),
        model_(std::move(model)),
        device_(device),
        batch_size_(batch_size),
        info_(std::move(info)) {}

  const BackboneInfo& info() const override { return info_; }

  absl::StatusOr<std::vector<float>> Encode(
      const std::vector<std::string>& texts) override {
    return Run(texts, info_.num_states * info_.hidden_size, "BERT forward pass",
               [this](const TokenBatch& batch) {
                 return model_->forward(batch.ids.to(device_),
                                        batch.mask.to(device_));
               });
  }

  absl::StatusOr<std::vector<float>> EncodeMeanPooled(
      const std::vector<std::string>& texts) override {
    return Run(texts, info_.hidden_size, "BERT forward pass (mean pooling)",
               [this](const TokenBatch& batch) {
                 const torch::Tensor mask = batch.mask.to(device_);
                 return MaskedMean(
                     model_->last_hidden_state(batch.ids.to(device_), mask),
                     mask);
               });
  }

 private:
  // Tokenises, batches texts of similar length, and copies `forward`'s
  // [b, row] output of each batch back into input order.
  template <typename Forward>
  absl::StatusOr<std::vector<float>> Run(const std::vector<std::string>& texts,
                                         int64_t row, const char* what,
                                         const Forward& forward) {
    const int64_t n = static_cast<int64_t>(texts.size());
    std::vector<float> out(n * row);
    std::vector<std::vector<int64_t>> ids(n);
    for (int64_t i = 0; i < n; ++i) ids[i] = tokenizer_->Encode(texts[i]);
    // Batches of similar length waste less compute on padding.
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return ids[a].size() < ids[b].size();
    });
    try {
      torch::InferenceMode guard;
      for (int64_t start = 0; start < n; start += batch_size_) {
        const int64_t b = std::min<int64_t>(batch_size_, n - start);
        std::vector<const std::vector<int64_t>*> seqs;
        for (int64_t k = 0; k < b; ++k) seqs.push_back(&ids[order[start + k]]);
        const TokenBatch batch = PadTokenBatch(seqs, tokenizer_->pad_id());
        torch::Tensor result =
            forward(batch).to(torch::kCPU, torch::kFloat).contiguous();
        const float* src = result.data_ptr<float>();
        for (int64_t k = 0; k < b; ++k) {
          std::memcpy(out.data() + order[start + k] * row, src + k * row,
                      row * sizeof(float));
        }
      }
    } catch (const std::exception& e) {
      return TorchErrorToStatus(e, what);
    }
    return out;
  }

  const std::unique_ptr<WordPieceTokenizer> tokenizer_;
  Bert model_;
  const torch::Device device_;
  const int batch_size_;
  const BackboneInfo info_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TextEncoder>> CreateBertTextEncoder(
    const BertTextEncoderOptions& options) {
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size must be >= 1, got ", options.batch_size));
  }
  ASSIGN_OR_RETURN(const BertConfig config,
                   LoadBertConfig(options.config, options.config_path,
                                  options.weights_path));
  if (options.max_length > config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_length ", options.max_length, " exceeds max_position_embeddings ",
        config.max_position_embeddings));
  }
  WordPieceTokenizer::Options tok_options;
  tok_options.vocab_path = options.vocab_path;
  tok_options.max_length = options.max_length;
  ASSIGN_OR_RETURN(std::unique_ptr<WordPieceTokenizer> tokenizer,
                   WordPieceTokenizer::Create(tok_options));
  if (tokenizer->vocab_size() > config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vocabulary has ", tokenizer->vocab_size(),
        " tokens but the model's vocab_size is ", config.vocab_size));
  }
  ASSIGN_OR_RETURN(torch::Device device, ParseDevice(options.device));

  BackboneInfo info;
  info.standin = options.weights_path.empty();
  info.num_states = config.num_hidden_layers + 1;
  info.hidden_size = config.hidden_size;
  info.config_json = config.ToJson();
  info.name = !options.name.empty()
                  ? options.name
                  : absl::StrCat(info.standin ? "bert-standin-" : "bert-",
                                 config.num_hidden_layers, "x",
                                 config.hidden_size);
  try {
    torch::NoGradGuard no_grad;
    Bert model(config);
    model->eval();
    const HfNamedTensors params = model->HfParameters();
    RETURN_IF_ERROR(InitOrLoadBackboneWeights(
        params, "BERT", info.name, options.weights_path, "bert.",
        options.seed, "pooler/heads"));
    info.fingerprint = FingerprintWeights(
        params, absl::StrCat(info.config_json, "|vocab=",
                             tokenizer->fingerprint(), "|seed=",
                             info.standin ? options.seed : 0));
    model->to(device);
    return std::unique_ptr<TextEncoder>(new BertTextEncoder(
        std::move(tokenizer), std::move(model), device, options.batch_size,
        std::move(info)));
  } catch (const std::exception& e) {
    return TorchErrorToStatus(e, "building the BERT backbone");
  }
}

}  // namespace recsys
