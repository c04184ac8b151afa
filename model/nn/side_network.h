// IISAN side-adapted network over cached backbone states (see
// shared/DESIGN.md, "The model"). Every module here follows LibTorch's
// XOptions / XImpl / TORCH_MODULE pattern and creates its tensors on the
// device of its inputs.
//
//   SideBlock:        y = up(relu(down(x))) + x        (dim -> bottleneck -> dim)
//   Gate:             g = sigmoid(w / temperature), w = 0 at start (g = 0.5)
//   IntraModalPath:   x_i = g_i * h[i] + (1 - g_i) * s_{i-1};  s_i = block_i(x_i),
//                     s_0 = 0; returns s_K
//   InterModalPath:   m = m_{i-1} + g_i * img_i + (1 - g_i) * txt_i;
//                     m_i = block_i(m), m_0 = 0; returns m_K. Where the widths
//                     differ (IISAN-Versa), a Linear(d_large -> d_small) per
//                     block maps the wider modality's state first.
//   IisanItemEncoder: one intra path per modality, the inter path when there
//                     are two; each path's final state goes through its own
//                     Linear(d_path -> d) head, and a Linear(P * d -> d) over
//                     their concatenation gives the item embedding. (DESIGN's
//                     "Linear(3*64 -> 64)" presumes 64-wide path outputs; the
//                     paths here keep the backbone width, so the per-path heads
//                     make that concat P * 64 wide.)
//
// Inputs h are [U, K, D]: U items, the K selected states, width D.
// Thread-safety: as any torch::nn::Module (no concurrent forward+backward).
#ifndef RECSYS_MODEL_NN_SIDE_NETWORK_H_
#define RECSYS_MODEL_NN_SIDE_NETWORK_H_

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace recsys {

struct SideBlockOptions {
  explicit SideBlockOptions(int64_t dim) : dim_(dim) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, bottleneck) = 64;
};

class SideBlockImpl : public torch::nn::Module {
 public:
  explicit SideBlockImpl(const SideBlockOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  const torch::nn::Linear& down() const { return down_; }
  const torch::nn::Linear& up() const { return up_; }

 private:
  torch::nn::Linear down_{nullptr};
  torch::nn::Linear up_{nullptr};
};
TORCH_MODULE(SideBlock);

struct GateOptions {
  TORCH_ARG(double, temperature) = 0.1;
};

class GateImpl : public torch::nn::Module {
 public:
  explicit GateImpl(const GateOptions& options = {});
  // A scalar tensor in (0, 1).
  torch::Tensor forward();
  double temperature() const { return options_.temperature(); }
  torch::Tensor weight;

 private:
  GateOptions options_;
};
TORCH_MODULE(Gate);

struct IntraModalPathOptions {
  IntraModalPathOptions(int64_t num_blocks, int64_t dim)
      : num_blocks_(num_blocks), dim_(dim) {}
  TORCH_ARG(int64_t, num_blocks);
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, bottleneck) = 64;
  // Training on float CPU tensors runs the path as one autograd node with a
  // hand-written backward (fused_intra_path.h): the same math, fewer and
  // larger ops. false: the blocks' LibTorch ops.
  TORCH_ARG(bool, fused_cpu_training) = true;
};

class IntraModalPathImpl : public torch::nn::Module {
 public:
  explicit IntraModalPathImpl(const IntraModalPathOptions& options);
  // h: [U, num_blocks, dim] -> [U, dim].
  torch::Tensor forward(const torch::Tensor& h);
  std::vector<Gate> gates;

 private:
  IntraModalPathOptions options_;
  std::vector<SideBlock> blocks_;
};
TORCH_MODULE(IntraModalPath);

struct InterModalPathOptions {
  InterModalPathOptions(int64_t num_blocks, int64_t text_dim, int64_t image_dim)
      : num_blocks_(num_blocks), text_dim_(text_dim), image_dim_(image_dim) {}
  TORCH_ARG(int64_t, num_blocks);
  TORCH_ARG(int64_t, text_dim);
  TORCH_ARG(int64_t, image_dim);
  TORCH_ARG(int64_t, bottleneck) = 64;
};

class InterModalPathImpl : public torch::nn::Module {
 public:
  explicit InterModalPathImpl(const InterModalPathOptions& options);
  // text: [U, K, text_dim], image: [U, K, image_dim] -> [U, min(dims)].
  torch::Tensor forward(const torch::Tensor& text, const torch::Tensor& image);
  int64_t output_dim() const;
  std::vector<Gate> gates;

 private:
  InterModalPathOptions options_;
  std::vector<SideBlock> blocks_;
  std::vector<torch::nn::Linear> align_;  // empty when the widths agree
};
TORCH_MODULE(InterModalPath);

struct ModalitySpec {
  std::string name;        // "text" or "image"
  int64_t num_blocks = 7;  // selected states
  int64_t dim = 768;       // backbone width
};

struct IisanItemEncoderOptions {
  std::vector<ModalitySpec> modalities;  // 1 or 2; text first when both
  int64_t bottleneck = 64;
  int64_t embedding_dim = 64;
  bool inter_path = true;  // only with two modalities
  bool fused_cpu_training = true;  // IntraModalPathOptions::fused_cpu_training
};

class IisanItemEncoderImpl : public torch::nn::Module {
 public:
  // Throws c10::Error (TORCH_CHECK) for invalid options; callers at the
  // Status boundary catch it.
  explicit IisanItemEncoderImpl(const IisanItemEncoderOptions& options);
  // states[m]: [U, num_blocks_m, dim_m] in modality order -> [U, embedding_dim].
  torch::Tensor forward(const std::vector<torch::Tensor>& states);
  bool has_inter_path() const { return !inter_.is_empty(); }

 private:
  IisanItemEncoderOptions options_;
  std::vector<IntraModalPath> intra_;
  InterModalPath inter_{nullptr};
  std::vector<torch::nn::Linear> heads_;
  torch::nn::Linear fuse_{nullptr};
};
TORCH_MODULE(IisanItemEncoder);

}  // namespace recsys

#endif  // RECSYS_MODEL_NN_SIDE_NETWORK_H_
