#include "model/encoders/torchscript_encoder.h"

#include <torch/script.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "model/encoders/torch_util.h"
#include "model/encoders/wordpiece_tokenizer.h"

namespace recsys {
namespace {

// Normalises a module output to [B, S, D] float CPU.
absl::StatusOr<torch::Tensor> StatesFromOutput(const torch::IValue& out) {
  auto cls = [](const torch::Tensor& t) -> absl::StatusOr<torch::Tensor> {
    if (t.dim() == 3) return t.select(1, 0);
    if (t.dim() == 2) return t;
    return absl::InvalidArgumentError(absl::StrCat(
        "a hidden state must be [B, T, D] or [B, D], got ", t.dim(), " dims"));
  };
  if (out.isTensor()) {
    const torch::Tensor t = out.toTensor();
    if (t.dim() != 3) {
      return absl::InvalidArgumentError(absl::StrCat(
          "module returned a tensor of ", t.dim(),
          " dims; expected [B, num_states, D]"));
    }
    return t.to(torch::kCPU, torch::kFloat).contiguous();
  }
  std::vector<torch::IValue> elems;
  if (out.isTuple()) {
    elems = out.toTupleRef().elements().vec();
  } else if (out.isList()) {
    elems = out.toList().vec();
  } else {
    return absl::InvalidArgumentError(
        "module must return a Tensor or a tuple/list of Tensors");
  }
  if (elems.empty()) return absl::InvalidArgumentError("module returned no states");
  std::vector<torch::Tensor> states;
  for (const torch::IValue& e : elems) {
    if (!e.isTensor()) {
      return absl::InvalidArgumentError("module returned a non-tensor state");
    }
    ASSIGN_OR_RETURN(torch::Tensor s, cls(e.toTensor()));
    states.push_back(s);
  }
  return torch::stack(states, 1).to(torch::kCPU, torch::kFloat).contiguous();
}

// The last element of a tuple/list output when it is token-level [B, T, D]
// float CPU (for mean pooling).
absl::StatusOr<torch::Tensor> LastTokenStates(const torch::IValue& out) {
  torch::IValue last;
  if (out.isTuple() && !out.toTupleRef().elements().empty()) {
    last = out.toTupleRef().elements().back();
  } else if (out.isList() && out.toList().size() > 0) {
    last = out.toList().get(out.toList().size() - 1);
  }
  if (!last.isTensor() || last.toTensor().dim() != 3) {
    return absl::InvalidArgumentError(
        "mean pooling needs a module returning a tuple/list of token-level "
        "[B, T, D] hidden states");
  }
  return last.toTensor().to(torch::kCPU, torch::kFloat).contiguous();
}

absl::StatusOr<std::string> FileFingerprint(const std::string& path,
                                            const std::string& settings) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  return absl::StrFormat("%08x%08x", Crc32c(settings, Crc32c(bytes, 1)),
                         Crc32c(bytes, Crc32c(settings, 2)));
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

absl::StatusOr<torch::jit::script::Module> LoadModule(const std::string& path,
                                                      torch::Device device) {
  if (!PathExists(path)) {
    return absl::NotFoundError(absl::StrCat("no TorchScript module at ", path));
  }
  try {
    torch::jit::script::Module m = torch::jit::load(path, device);
    m.eval();
    return m;
  } catch (const std::exception& e) {
    const absl::Status s = TorchErrorToStatus(e, "loading " + path);
    return absl::InvalidArgumentError(s.message());
  }
}

// Copies a batch's [b, S, D] states (S * D == row, CPU float, contiguous)
// to `dst`; INTERNAL when the module's output shape changed since the probe.
absl::Status CopyStates(const torch::Tensor& states, int64_t b, int64_t row,
                        float* dst) {
  if (states.size(0) != b || states.size(1) * states.size(2) != row) {
    return absl::InternalError("TorchScript module changed its output shape");
  }
  std::memcpy(dst, states.data_ptr<float>(), b * row * sizeof(float));
  return absl::OkStatus();
}

// Fills `info` from the probe forward pass: shapes, config, name and a
// fingerprint of the module file with the config (+ `fingerprint_extra`).
absl::Status DescribeModule(const torch::Tensor& probe,
                            const nlohmann::json& config,
                            const std::string& name,
                            const std::string& module_path,
                            const std::string& fingerprint_extra,
                            BackboneInfo* info) {
  info->config_json = config.dump();
  info->name = name.empty() ? "torchscript-" + BaseName(module_path) : name;
  info->num_states = probe.size(1);
  info->hidden_size = probe.size(2);
  ASSIGN_OR_RETURN(info->fingerprint,
                   FileFingerprint(module_path,
                                   info->config_json + fingerprint_extra));
  return absl::OkStatus();
}

class TorchScriptTextEncoder : public TextEncoder {
 public:
  TorchScriptTextEncoder(torch::jit::script::Module module,
                         std::unique_ptr<WordPieceTokenizer> tokenizer,
                         torch::Device device, int batch_size)
      : module_(std::move(module)),
        tokenizer_(std::move(tokenizer)),
        device_(device),
        batch_size_(batch_size) {}

  const BackboneInfo& info() const override { return info_; }

  // Runs one padded batch; returns [B, S, D], or with `mean` the masked
  // mean of the last token-level state, [B, D].
  absl::StatusOr<torch::Tensor> Run(const std::vector<std::vector<int64_t>>& ids,
                                    bool mean = false) {
    std::vector<const std::vector<int64_t>*> seqs;
    for (const auto& s : ids) seqs.push_back(&s);
    const TokenBatch batch = PadTokenBatch(seqs, tokenizer_->pad_id());
    try {
      torch::InferenceMode guard;
      const torch::IValue out =
          module_.forward({batch.ids.to(device_), batch.mask.to(device_)});
      if (!mean) return StatesFromOutput(out);
      ASSIGN_OR_RETURN(torch::Tensor last, LastTokenStates(out));
      if (last.size(1) != batch.mask.size(1)) {
        return absl::InvalidArgumentError(
            "mean pooling: the module's last state has another length than "
            "its input_ids");
      }
      return MaskedMean(last, batch.mask);
    } catch (const std::exception& e) {
      return TorchErrorToStatus(e, "TorchScript text forward pass");
    }
  }

  absl::StatusOr<std::vector<float>> Encode(
      const std::vector<std::string>& texts) override {
    return EncodeRows(texts, info_.num_states * info_.hidden_size, false);
  }

  absl::StatusOr<std::vector<float>> EncodeMeanPooled(
      const std::vector<std::string>& texts) override {
    return EncodeRows(texts, info_.hidden_size, true);
  }

  absl::StatusOr<std::vector<float>> EncodeRows(
      const std::vector<std::string>& texts, int64_t row, bool mean) {
    const int64_t n = static_cast<int64_t>(texts.size());
    std::vector<float> out(n * row);
    for (int64_t start = 0; start < n; start += batch_size_) {
      const int64_t b = std::min<int64_t>(batch_size_, n - start);
      std::vector<std::vector<int64_t>> ids;
      for (int64_t k = 0; k < b; ++k) ids.push_back(tokenizer_->Encode(texts[start + k]));
      ASSIGN_OR_RETURN(torch::Tensor rows, Run(ids, mean));
      if (rows.size(0) != b || rows.numel() != b * row) {
        return absl::InternalError("TorchScript module changed its output shape");
      }
      std::memcpy(out.data() + start * row, rows.data_ptr<float>(),
                  b * row * sizeof(float));
    }
    return out;
  }

  BackboneInfo info_;

 private:
  torch::jit::script::Module module_;
  const std::unique_ptr<WordPieceTokenizer> tokenizer_;
  const torch::Device device_;
  const int batch_size_;
};

class TorchScriptImageEncoder : public ImageEncoder {
 public:
  TorchScriptImageEncoder(torch::jit::script::Module module,
                          TorchScriptImageEncoderOptions options,
                          torch::Device device)
      : module_(std::move(module)), options_(std::move(options)), device_(device) {}

  const BackboneInfo& info() const override { return info_; }

  absl::StatusOr<torch::Tensor> Run(const torch::Tensor& pixels) {
    try {
      torch::InferenceMode guard;
      return StatesFromOutput(module_.forward({pixels.to(device_)}));
    } catch (const std::exception& e) {
      return TorchErrorToStatus(e, "TorchScript image forward pass");
    }
  }

  absl::StatusOr<std::vector<float>> Encode(
      const std::vector<RgbImage>& images) override {
    const int64_t n = static_cast<int64_t>(images.size());
    const int64_t row = info_.num_states * info_.hidden_size;
    const int side = options_.image_size;
    const int64_t pixels = 3ll * side * side;
    std::vector<float> out(n * row);
    for (int64_t start = 0; start < n; start += options_.batch_size) {
      const int64_t b = std::min<int64_t>(options_.batch_size, n - start);
      torch::Tensor batch = torch::empty({b, 3, side, side}, torch::kFloat);
      for (int64_t k = 0; k < b; ++k) {
        const RgbImage& im = images[start + k];
        if (im.width < 1 || im.height < 1 ||
            im.pixels.size() != static_cast<size_t>(im.width) * im.height * 3) {
          return absl::InvalidArgumentError(absl::StrCat(
              "image ", start + k, " is empty or its size does not match"));
        }
        const std::vector<float> chw =
            NormalizeToChw(ResizeBilinear(im, side, side), side, side,
                           options_.image_mean, options_.image_std);
        std::memcpy(batch.data_ptr<float>() + k * pixels, chw.data(),
                    pixels * sizeof(float));
      }
      ASSIGN_OR_RETURN(torch::Tensor states, Run(batch));
      RETURN_IF_ERROR(CopyStates(states, b, row, out.data() + start * row));
    }
    return out;
  }

  BackboneInfo info_;

 private:
  torch::jit::script::Module module_;
  const TorchScriptImageEncoderOptions options_;
  const torch::Device device_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TextEncoder>> CreateTorchScriptTextEncoder(
    const TorchScriptTextEncoderOptions& options) {
  if (options.batch_size < 1) return absl::InvalidArgumentError("batch_size must be >= 1");
  ASSIGN_OR_RETURN(torch::Device device, ParseDevice(options.device));
  WordPieceTokenizer::Options tok_options;
  tok_options.vocab_path = options.vocab_path;
  tok_options.max_length = options.max_length;
  ASSIGN_OR_RETURN(std::unique_ptr<WordPieceTokenizer> tokenizer,
                   WordPieceTokenizer::Create(tok_options));
  ASSIGN_OR_RETURN(torch::jit::script::Module module,
                   LoadModule(options.module_path, device));
  const std::string vocab_fp = tokenizer->fingerprint();
  const int64_t cls = tokenizer->cls_id(), sep = tokenizer->sep_id();
  auto enc = std::make_unique<TorchScriptTextEncoder>(
      std::move(module), std::move(tokenizer), device, options.batch_size);
  absl::StatusOr<torch::Tensor> probe = enc->Run({{cls, sep}});
  if (!probe.ok()) return absl::InvalidArgumentError(probe.status().message());
  nlohmann::json config = {{"type", "torchscript"},
                           {"modality", "text"},
                           {"module", BaseName(options.module_path)},
                           {"max_length", options.max_length}};
  RETURN_IF_ERROR(DescribeModule(*probe, config, options.name,
                                 options.module_path, "|" + vocab_fp,
                                 &enc->info_));
  return std::unique_ptr<TextEncoder>(std::move(enc));
}

absl::StatusOr<std::unique_ptr<ImageEncoder>> CreateTorchScriptImageEncoder(
    const TorchScriptImageEncoderOptions& options) {
  if (options.batch_size < 1 || options.image_size < 1) {
    return absl::InvalidArgumentError("batch_size and image_size must be >= 1");
  }
  if (options.image_mean.size() != 3 || options.image_std.size() != 3) {
    return absl::InvalidArgumentError("image_mean and image_std need 3 entries");
  }
  ASSIGN_OR_RETURN(torch::Device device, ParseDevice(options.device));
  ASSIGN_OR_RETURN(torch::jit::script::Module module,
                   LoadModule(options.module_path, device));
  auto enc = std::make_unique<TorchScriptImageEncoder>(std::move(module),
                                                       options, device);
  absl::StatusOr<torch::Tensor> probe = enc->Run(
      torch::zeros({1, 3, options.image_size, options.image_size}));
  if (!probe.ok()) return absl::InvalidArgumentError(probe.status().message());
  nlohmann::json config = {{"type", "torchscript"},
                           {"modality", "image"},
                           {"module", BaseName(options.module_path)},
                           {"image_size", options.image_size},
                           {"image_mean", options.image_mean},
                           {"image_std", options.image_std}};
  RETURN_IF_ERROR(DescribeModule(*probe, config, options.name,
                                 options.module_path, "", &enc->info_));
  return std::unique_ptr<ImageEncoder>(std::move(enc));
}

}  // namespace recsys
