// The BERT text backbone behind the TextEncoder interface: WordPiece
// tokenizer + BertModule, weights from a Hugging Face `model.safetensors`,
// or a seeded stand-in when none are given (offline development: every
// output says so through BackboneInfo::standin and a log line).
// No LibTorch in this header.
#ifndef RECSYS_MODEL_ENCODERS_BERT_TEXT_ENCODER_H_
#define RECSYS_MODEL_ENCODERS_BERT_TEXT_ENCODER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/encoders/backbone_config.h"
#include "model/encoders/encoder.h"

namespace recsys {

struct BertTextEncoderOptions {
  std::string vocab_path;    // vocab.txt (required)
  std::string weights_path;  // model.safetensors; empty: seeded stand-in
  // HF config.json. Empty: "config.json" beside weights_path when that
  // exists, otherwise `config`.
  std::string config_path;
  BertConfig config;         // architecture when there is no config file
  uint64_t seed = 42;        // stand-in weights
  int max_length = 30;       // tokens per title, [CLS]/[SEP] included
  int batch_size = 64;       // titles per forward pass
  std::string device = "cpu";  // "cpu", "cuda", "cuda:1"
  std::string name;          // BackboneInfo::name; empty: derived
};

// INVALID_ARGUMENT for a bad config, device, or a vocabulary larger than
// the model's; NOT_FOUND for missing files; FAILED_PRECONDITION for CUDA
// without a GPU.
absl::StatusOr<std::unique_ptr<TextEncoder>> CreateBertTextEncoder(
    const BertTextEncoderOptions& options);

}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_BERT_TEXT_ENCODER_H_
