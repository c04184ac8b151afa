// Backbones exported by the user as TorchScript (torch.jit.script/trace,
// saved with torch.jit.save), for encoders that are not BERT/ViT-shaped
// (CLIP, an LLM). The module must return the hidden states of every layer:
//   - a Tensor [B, num_states, D] of per-layer CLS (or pooled) vectors, or
//   - a tuple/list of Tensors [B, T, D] (HF `hidden_states`; position 0 is
//     taken) or [B, D].
// Text modules take forward(input_ids [B, T] int64, attention_mask [B, T]
// int64) with ids from the BERT WordPiece tokenizer; image modules take
// forward(pixel_values [B, 3, S, S] float), resized and normalised here.
// The shape is learned from one probe call at creation. No LibTorch in this
// header.
#ifndef RECSYS_MODEL_ENCODERS_TORCHSCRIPT_ENCODER_H_
#define RECSYS_MODEL_ENCODERS_TORCHSCRIPT_ENCODER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/encoders/encoder.h"

namespace recsys {

struct TorchScriptTextEncoderOptions {
  std::string module_path;  // TorchScript archive (required)
  std::string vocab_path;   // WordPiece vocab.txt (required)
  int max_length = 30;      // tokens per text incl. [CLS]/[SEP]
  int batch_size = 64;
  std::string device = "cpu";
  std::string name;         // empty: "torchscript-<file name>"
};

struct TorchScriptImageEncoderOptions {
  std::string module_path;  // TorchScript archive (required)
  int image_size = 224;     // square input side
  std::vector<float> image_mean = {0.5f, 0.5f, 0.5f};
  std::vector<float> image_std = {0.5f, 0.5f, 0.5f};
  int batch_size = 32;
  std::string device = "cpu";
  std::string name;
};

// NOT_FOUND for a missing file; INVALID_ARGUMENT when the archive does not
// load or the probe output has none of the accepted shapes.
absl::StatusOr<std::unique_ptr<TextEncoder>> CreateTorchScriptTextEncoder(
    const TorchScriptTextEncoderOptions& options);
absl::StatusOr<std::unique_ptr<ImageEncoder>> CreateTorchScriptImageEncoder(
    const TorchScriptImageEncoderOptions& options);

}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_TORCHSCRIPT_ENCODER_H_
