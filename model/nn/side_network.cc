#include "model/nn/side_network.h"

#include <algorithm>
#include <string>

#include "model/nn/fused_intra_path.h"

namespace recsys {

SideBlockImpl::SideBlockImpl(const SideBlockOptions& o) {
  down_ = register_module("down", torch::nn::Linear(o.dim(), o.bottleneck()));
  up_ = register_module("up", torch::nn::Linear(o.bottleneck(), o.dim()));
}

torch::Tensor SideBlockImpl::forward(const torch::Tensor& x) {
  return up_(torch::relu(down_(x))) + x;
}

GateImpl::GateImpl(const GateOptions& options) : options_(options) {
  weight = register_parameter("weight", torch::zeros({1}));
}

torch::Tensor GateImpl::forward() {
  return torch::sigmoid(weight / options_.temperature());
}

IntraModalPathImpl::IntraModalPathImpl(const IntraModalPathOptions& o)
    : options_(o) {
  auto blocks = register_module("blocks", torch::nn::ModuleList());
  auto gate_list = register_module("gates", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.num_blocks(); ++i) {
    blocks_.push_back(SideBlock(SideBlockOptions(o.dim()).bottleneck(o.bottleneck())));
    gates.push_back(Gate());
    blocks->push_back(blocks_.back());
    gate_list->push_back(gates.back());
  }
}

torch::Tensor IntraModalPathImpl::forward(const torch::Tensor& h) {
  TORCH_CHECK(h.dim() == 3 && h.size(1) == options_.num_blocks() &&
                  h.size(2) == options_.dim(),
              "intra-modal path expects [U, ", options_.num_blocks(), ", ",
              options_.dim(), "], got ", h.sizes());
  if (is_training() && options_.fused_cpu_training() && torch::GradMode::is_enabled()) {
    std::vector<FusedSideBlock> fused;
    for (int64_t i = 0; i < options_.num_blocks(); ++i) {
      fused.push_back({gates[i]->weight, gates[i]->temperature(), blocks_[i]->down()->weight,
                       blocks_[i]->down()->bias, blocks_[i]->up()->weight,
                       blocks_[i]->up()->bias});
    }
    if (FusedIntraPathApplies(h, fused)) return FusedIntraPathForward(h, fused);
  }
  torch::Tensor s = torch::zeros({h.size(0), h.size(2)}, h.options());
  for (int64_t i = 0; i < options_.num_blocks(); ++i) {
    const torch::Tensor g = gates[i]->forward();
    s = blocks_[i]->forward(g * h.select(1, i) + (1 - g) * s);
  }
  return s;
}

InterModalPathImpl::InterModalPathImpl(const InterModalPathOptions& o)
    : options_(o) {
  const int64_t d = output_dim();
  const int64_t wide = std::max(o.text_dim(), o.image_dim());
  auto blocks = register_module("blocks", torch::nn::ModuleList());
  auto gate_list = register_module("gates", torch::nn::ModuleList());
  torch::nn::ModuleList align;
  if (o.text_dim() != o.image_dim()) align = register_module("align", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.num_blocks(); ++i) {
    blocks_.push_back(SideBlock(SideBlockOptions(d).bottleneck(o.bottleneck())));
    gates.push_back(Gate());
    blocks->push_back(blocks_.back());
    gate_list->push_back(gates.back());
    if (o.text_dim() != o.image_dim()) {
      align_.push_back(torch::nn::Linear(wide, d));
      align->push_back(align_.back());
    }
  }
}

int64_t InterModalPathImpl::output_dim() const {
  return std::min(options_.text_dim(), options_.image_dim());
}

torch::Tensor InterModalPathImpl::forward(const torch::Tensor& text,
                                          const torch::Tensor& image) {
  const int64_t k = options_.num_blocks();
  TORCH_CHECK(text.dim() == 3 && text.size(1) == k && text.size(2) == options_.text_dim(),
              "inter-modal path: text states must be [U, ", k, ", ",
              options_.text_dim(), "], got ", text.sizes());
  TORCH_CHECK(image.dim() == 3 && image.size(1) == k &&
                  image.size(2) == options_.image_dim() && image.size(0) == text.size(0),
              "inter-modal path: image states must be [U, ", k, ", ",
              options_.image_dim(), "], got ", image.sizes());
  const bool text_wider = options_.text_dim() > options_.image_dim();
  torch::Tensor m = torch::zeros({text.size(0), output_dim()}, text.options());
  for (int64_t i = 0; i < k; ++i) {
    torch::Tensor t = text.select(1, i);
    torch::Tensor v = image.select(1, i);
    if (!align_.empty()) {
      if (text_wider) {
        t = align_[i]->forward(t);
      } else {
        v = align_[i]->forward(v);
      }
    }
    const torch::Tensor g = gates[i]->forward();
    m = blocks_[i]->forward(m + g * v + (1 - g) * t);
  }
  return m;
}

IisanItemEncoderImpl::IisanItemEncoderImpl(const IisanItemEncoderOptions& o)
    : options_(o) {
  TORCH_CHECK(!o.modalities.empty() && o.modalities.size() <= 2,
              "IISAN needs one or two modalities, got ", o.modalities.size());
  int64_t paths = 0;
  for (const ModalitySpec& m : o.modalities) {
    intra_.push_back(register_module(
        "intra_" + m.name,
        IntraModalPath(IntraModalPathOptions(m.num_blocks, m.dim)
                           .bottleneck(o.bottleneck)
                           .fused_cpu_training(o.fused_cpu_training))));
    heads_.push_back(register_module("head_" + m.name,
                                     torch::nn::Linear(m.dim, o.embedding_dim)));
    ++paths;
  }
  if (o.modalities.size() == 2 && o.inter_path) {
    const ModalitySpec& t = o.modalities[0];
    const ModalitySpec& v = o.modalities[1];
    TORCH_CHECK(t.num_blocks == v.num_blocks,
                "the inter-modal path needs equal block counts (", t.name, ": ",
                t.num_blocks, ", ", v.name, ": ", v.num_blocks,
                "); use layer_mode=group");
    inter_ = register_module(
        "inter", InterModalPath(InterModalPathOptions(t.num_blocks, t.dim, v.dim)
                                    .bottleneck(o.bottleneck)));
    heads_.push_back(register_module(
        "head_inter", torch::nn::Linear(inter_->output_dim(), o.embedding_dim)));
    ++paths;
  }
  fuse_ = register_module("fuse",
                          torch::nn::Linear(paths * o.embedding_dim, o.embedding_dim));
}

torch::Tensor IisanItemEncoderImpl::forward(const std::vector<torch::Tensor>& states) {
  TORCH_CHECK(states.size() == intra_.size(), "expected ", intra_.size(),
              " modalities of states, got ", states.size());
  std::vector<torch::Tensor> heads;
  for (size_t m = 0; m < intra_.size(); ++m) {
    heads.push_back(heads_[m]->forward(intra_[m]->forward(states[m])));
  }
  if (!inter_.is_empty()) {
    heads.push_back(heads_.back()->forward(inter_->forward(states[0], states[1])));
  }
  return fuse_->forward(torch::cat(heads, /*dim=*/1));
}

}  // namespace recsys
