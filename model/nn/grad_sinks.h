// Per-thread destinations for the fused training kernels' weight gradients
// (fused_block.h, fused_intra_path.h).
//
// Why: a split CPU training step runs one graph per row shard, on as many
// threads (trainer/training/trainer.cc), and through autograd every shard
// adds every weight's gradient into the same gradient tensor: an
// AccumulateGrad node per weight and shard, under that weight's lock, each
// a full-size temporary added in another pass. A fused kernel whose forward
// runs while a thread has sinks set takes the weights it has sinks for out
// of the graph and, in its backward, adds their gradients into those sinks
// itself: the matrix products straight into them (cpu_matmul.h), one
// buffer per shard, so no lock and no temporary. The optimizer then sums
// the shards' buffers (trainer/training/sharded_adam.h).
//
// A kernel uses sinks only when each weight it would take out has one and
// an input it keeps in the graph requires grad (autograd runs a node's
// backward only then); otherwise its gradients go through autograd as
// before. The sums are the same bits as autograd's for one or two shards:
// a sink starts at zero, as autograd's gradient does, and x + y = y + x.
//
// Thread-safety: a GradSinks is read by the kernels of every thread it is
// set on, never written after it is set; its sink tensors are written by
// the backward calls of the graphs built under it, which the owner runs one
// at a time per GradSinks.
#ifndef RECSYS_MODEL_NN_GRAD_SINKS_H_
#define RECSYS_MODEL_NN_GRAD_SINKS_H_

#include <unordered_map>
#include <vector>

#include <torch/torch.h>

namespace recsys {

class GradSinks {
 public:
  // Gradients of `param` are added into `sink`: a contiguous float CPU
  // tensor of param's shape, which the owner zeroes between steps.
  void Add(const torch::Tensor& param, torch::Tensor sink);
  // param's sink, or nullptr.
  const torch::Tensor* Find(const torch::Tensor& param) const;

 private:
  std::unordered_map<const c10::TensorImpl*, torch::Tensor> sinks_;
};

// While in scope, the fused kernels' forward calls on this thread take
// their weights' sinks from `sinks` (nullptr: none).
class ScopedGradSinks {
 public:
  explicit ScopedGradSinks(const GradSinks* sinks);
  ~ScopedGradSinks();
  ScopedGradSinks(const ScopedGradSinks&) = delete;
  ScopedGradSinks& operator=(const ScopedGradSinks&) = delete;

 private:
  const GradSinks* previous_;
};

// For the kernels: their weights' sinks, passed to their autograd node (a
// struct, so that apply() takes it for a non-tensor argument).
struct KernelSinks {
  std::vector<torch::Tensor> tensors;  // one per weight; empty: none

  bool empty() const { return tensors.empty(); }
  // In the node's forward / backward.
  void Save(torch::autograd::AutogradContext* ctx);
  static KernelSinks Load(torch::autograd::AutogradContext* ctx);
  // In backward, weight i's gradient aᵀ · b (a Linear weight's, from its
  // output's gradient a and its input b) or `grad`: returned, or with
  // sinks added into sink i (the product straight in) and undefined
  // returned (the weight is not in the graph).
  torch::Tensor Product(size_t i, const torch::Tensor& a, const torch::Tensor& b) const;
  torch::Tensor Add(size_t i, torch::Tensor grad) const;
};

// The sink of each of `weights` if the calling thread's sinks have one for
// every defined tensor among them, grad mode is on and `keeps_graph` (an
// input the kernel keeps in the graph requires grad); else none. Undefined
// weights get undefined sinks.
KernelSinks SinksFor(const std::vector<torch::Tensor>& weights, bool keeps_graph);

}  // namespace recsys

#endif  // RECSYS_MODEL_NN_GRAD_SINKS_H_
