// build-cache: computes the per-layer CLS hidden states of every item with a
// frozen backbone and writes one trainer/cache file per modality.
//
//   bazel run //trainer/backbone:build_cache --
//     --items=/path/items.tsv --vocab=/path/vocab.txt
//     --text_out=/tmp/text_states.safetensors
//
// Without --bert_weights / --vit_weights the encoders are seeded stand-ins
// (default 6 x 256 text, 4 x 192 image), marked standin=true in the output.
// A killed build resumes from its chunk files when rerun with the same flags.
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "model/encoders/bert_text_encoder.h"
#include "trainer/backbone/cache_builder.h"
#include "model/encoders/torch_runtime.h"
#include "model/encoders/torchscript_encoder.h"
#include "model/encoders/vit_image_encoder.h"

ABSL_FLAG(std::string, items, "", "text items: key<TAB>title TSV");
ABSL_FLAG(std::string, images, "", "image items: key<TAB>image path TSV");
ABSL_FLAG(std::string, image_base_dir, "",
          "base of relative image paths (default: the --images file's dir)");
ABSL_FLAG(std::string, text_out, "", "output cache file for text states");
ABSL_FLAG(std::string, image_out, "", "output cache file for image states");
ABSL_FLAG(std::string, work_dir, "",
          "chunk files for resuming (default: <out>.work)");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda or cuda:N");
ABSL_FLAG(std::string, dtype, "f16", "stored dtype: f16 or f32");
ABSL_FLAG(int64_t, chunk_size, 1024, "items per resumable chunk");
ABSL_FLAG(int32_t, batch_size, 64, "items per forward pass");
ABSL_FLAG(int32_t, threads, 0, "LibTorch intra-op threads (0: all cores)");
ABSL_FLAG(int64_t, stop_after_chunks, -1,
          "testing: stop after computing this many chunks (resume later)");
ABSL_FLAG(bool, keep_work_dir, false, "keep chunk files after assembly");
ABSL_FLAG(absl::Duration, progress_interval, absl::Seconds(5),
          "progress log interval (0: only the final line)");
ABSL_FLAG(uint64_t, seed, 42, "seed of the stand-in weights");
// Text backbone.
ABSL_FLAG(std::string, vocab, "", "BERT vocab.txt (required for text)");
ABSL_FLAG(std::string, bert_weights, "",
          "HF BERT model.safetensors (empty: seeded stand-in)");
ABSL_FLAG(std::string, bert_config, "",
          "HF config.json (default: beside the weights, else the flags below)");
ABSL_FLAG(int32_t, bert_layers, 6, "stand-in/flag config: layers");
ABSL_FLAG(int32_t, bert_hidden, 256, "stand-in/flag config: width");
ABSL_FLAG(int32_t, bert_heads, 4, "stand-in/flag config: attention heads");
ABSL_FLAG(int32_t, bert_intermediate, 0, "FFN width (0: 4 x hidden)");
ABSL_FLAG(int32_t, max_length, 30, "tokens per title incl. [CLS]/[SEP]");
// Image backbone.
ABSL_FLAG(std::string, vit_weights, "",
          "HF ViT model.safetensors (empty: seeded stand-in)");
ABSL_FLAG(std::string, vit_config, "", "HF ViT config.json");
ABSL_FLAG(int32_t, vit_layers, 4, "stand-in/flag config: layers");
ABSL_FLAG(int32_t, vit_hidden, 192, "stand-in/flag config: width");
ABSL_FLAG(int32_t, vit_heads, 3, "stand-in/flag config: attention heads");
ABSL_FLAG(int32_t, vit_image_size, 224, "stand-in/flag config: input size");
ABSL_FLAG(int32_t, vit_patch_size, 16, "stand-in/flag config: patch size");
// TorchScript backbones (instead of BERT / ViT).
ABSL_FLAG(std::string, text_torchscript, "",
          "TorchScript text module: forward(input_ids, attention_mask) -> "
          "all hidden states (uses --vocab and --max_length)");
ABSL_FLAG(std::string, image_torchscript, "",
          "TorchScript image module: forward(pixel_values) -> all hidden "
          "states (uses --vit_image_size, --image_mean, --image_std)");
ABSL_FLAG(std::vector<std::string>, image_mean, {},
          "TorchScript image normalisation mean, e.g. 0.485,0.456,0.406");
ABSL_FLAG(std::vector<std::string>, image_std, {},
          "TorchScript image normalisation std, e.g. 0.229,0.224,0.225");

namespace recsys {
namespace {

absl::StatusOr<CacheBuildOptions> CommonOptions(const std::string& out) {
  CacheBuildOptions o;
  o.output_path = out;
  o.work_dir = absl::GetFlag(FLAGS_work_dir);
  o.chunk_size = absl::GetFlag(FLAGS_chunk_size);
  const std::string dtype = absl::AsciiStrToLower(absl::GetFlag(FLAGS_dtype));
  if (dtype == "f16") {
    o.dtype = DType::kF16;
  } else if (dtype == "f32") {
    o.dtype = DType::kF32;
  } else {
    return absl::InvalidArgumentError("--dtype must be f16 or f32");
  }
  o.stop_after_chunks = absl::GetFlag(FLAGS_stop_after_chunks);
  o.keep_work_dir = absl::GetFlag(FLAGS_keep_work_dir);
  o.progress_interval = absl::GetFlag(FLAGS_progress_interval);
  o.images_per_batch = absl::GetFlag(FLAGS_batch_size);
  return o;
}

absl::StatusOr<std::unique_ptr<TextEncoder>> MakeTextEncoder() {
  const std::string vocab = absl::GetFlag(FLAGS_vocab);
  if (vocab.empty()) {
    return absl::InvalidArgumentError("--vocab is required with --items");
  }
  if (!absl::GetFlag(FLAGS_text_torchscript).empty()) {
    TorchScriptTextEncoderOptions to;
    to.module_path = absl::GetFlag(FLAGS_text_torchscript);
    to.vocab_path = vocab;
    to.max_length = absl::GetFlag(FLAGS_max_length);
    to.batch_size = absl::GetFlag(FLAGS_batch_size);
    to.device = absl::GetFlag(FLAGS_device);
    return CreateTorchScriptTextEncoder(to);
  }
  BertTextEncoderOptions eo;
  eo.vocab_path = vocab;
  eo.weights_path = absl::GetFlag(FLAGS_bert_weights);
  eo.config_path = absl::GetFlag(FLAGS_bert_config);
  eo.config.num_hidden_layers = absl::GetFlag(FLAGS_bert_layers);
  eo.config.hidden_size = absl::GetFlag(FLAGS_bert_hidden);
  eo.config.num_attention_heads = absl::GetFlag(FLAGS_bert_heads);
  const int inter = absl::GetFlag(FLAGS_bert_intermediate);
  eo.config.intermediate_size = inter > 0 ? inter : 4 * eo.config.hidden_size;
  eo.seed = absl::GetFlag(FLAGS_seed);
  eo.max_length = absl::GetFlag(FLAGS_max_length);
  eo.batch_size = absl::GetFlag(FLAGS_batch_size);
  eo.device = absl::GetFlag(FLAGS_device);
  return CreateBertTextEncoder(eo);
}

absl::Status BuildText() {
  ASSIGN_OR_RETURN(std::unique_ptr<TextEncoder> encoder, MakeTextEncoder());
  ASSIGN_OR_RETURN(std::vector<CacheItem> items,
                   ReadItemTable(absl::GetFlag(FLAGS_items)));
  ASSIGN_OR_RETURN(CacheBuildOptions o,
                   CommonOptions(absl::GetFlag(FLAGS_text_out)));
  o.extra_metadata["source"] = absl::GetFlag(FLAGS_items);
  o.extra_metadata["max_length"] = absl::StrCat(absl::GetFlag(FLAGS_max_length));
  o.extra_metadata["tokenizer"] = "bert-wordpiece-uncased";
  return BuildTextCache(items, encoder.get(), o).status();
}

absl::StatusOr<std::vector<float>> ParseFloats(
    const std::vector<std::string>& values, const char* flag) {
  std::vector<float> out;
  for (const std::string& v : values) {
    float f;
    if (!absl::SimpleAtof(v, &f)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", v, "' is not a number"));
    }
    out.push_back(f);
  }
  if (out.empty()) out = {0.5f, 0.5f, 0.5f};
  return out;
}

absl::StatusOr<std::unique_ptr<ImageEncoder>> MakeImageEncoder() {
  if (!absl::GetFlag(FLAGS_image_torchscript).empty()) {
    TorchScriptImageEncoderOptions to;
    to.module_path = absl::GetFlag(FLAGS_image_torchscript);
    to.image_size = absl::GetFlag(FLAGS_vit_image_size);
    ASSIGN_OR_RETURN(to.image_mean,
                     ParseFloats(absl::GetFlag(FLAGS_image_mean), "image_mean"));
    ASSIGN_OR_RETURN(to.image_std,
                     ParseFloats(absl::GetFlag(FLAGS_image_std), "image_std"));
    to.batch_size = absl::GetFlag(FLAGS_batch_size);
    to.device = absl::GetFlag(FLAGS_device);
    return CreateTorchScriptImageEncoder(to);
  }
  ViTImageEncoderOptions eo;
  eo.weights_path = absl::GetFlag(FLAGS_vit_weights);
  eo.config_path = absl::GetFlag(FLAGS_vit_config);
  eo.config.num_hidden_layers = absl::GetFlag(FLAGS_vit_layers);
  eo.config.hidden_size = absl::GetFlag(FLAGS_vit_hidden);
  eo.config.num_attention_heads = absl::GetFlag(FLAGS_vit_heads);
  eo.config.intermediate_size = 4 * eo.config.hidden_size;
  eo.config.image_size = absl::GetFlag(FLAGS_vit_image_size);
  eo.config.patch_size = absl::GetFlag(FLAGS_vit_patch_size);
  eo.seed = absl::GetFlag(FLAGS_seed);
  eo.batch_size = absl::GetFlag(FLAGS_batch_size);
  eo.device = absl::GetFlag(FLAGS_device);
  return CreateViTImageEncoder(eo);
}

absl::Status BuildImages() {
  ASSIGN_OR_RETURN(std::unique_ptr<ImageEncoder> encoder, MakeImageEncoder());
  const std::string images = absl::GetFlag(FLAGS_images);
  ASSIGN_OR_RETURN(std::vector<CacheItem> items, ReadItemTable(images));
  ASSIGN_OR_RETURN(CacheBuildOptions o,
                   CommonOptions(absl::GetFlag(FLAGS_image_out)));
  o.image_base_dir = absl::GetFlag(FLAGS_image_base_dir);
  if (o.image_base_dir.empty()) {
    const size_t slash = images.rfind('/');
    o.image_base_dir = slash == std::string::npos ? "." : images.substr(0, slash);
  }
  o.extra_metadata["source"] = images;
  return BuildImageCache(items, encoder.get(), o).status();
}

absl::Status Run() {
  const bool text = !absl::GetFlag(FLAGS_items).empty();
  const bool image = !absl::GetFlag(FLAGS_images).empty();
  if (!text && !image) {
    return absl::InvalidArgumentError("give --items and/or --images");
  }
  if (text && absl::GetFlag(FLAGS_text_out).empty()) {
    return absl::InvalidArgumentError("--text_out is required with --items");
  }
  if (image && absl::GetFlag(FLAGS_image_out).empty()) {
    return absl::InvalidArgumentError("--image_out is required with --images");
  }
  SetTorchThreads(absl::GetFlag(FLAGS_threads));
  LOG(INFO) << "build-cache: LibTorch threads " << TorchThreads()
            << ", device " << absl::GetFlag(FLAGS_device);
  if (text) RETURN_IF_ERROR(BuildText());
  if (image) RETURN_IF_ERROR(BuildImages());
  return absl::OkStatus();
}

}  // namespace
}  // namespace recsys

int main(int argc, char** argv) {
  recsys::ParseCommandLineWithHelp(argc, argv, "Builds the per-layer hidden-state cache of an item catalog.\n  build_cache --items=items.tsv --vocab=vocab.txt --text_out=text.safetensors");
  const absl::Status status = recsys::Run();
  if (!status.ok()) {
    LOG(ERROR) << "build-cache failed: " << status;
    return status.code() == absl::StatusCode::kAborted ? 3 : 1;
  }
  return 0;
}
