// LibTorch process settings, callable from code that does not include
// LibTorch (flags parsing in main()).
#ifndef RECSYS_MODEL_ENCODERS_TORCH_RUNTIME_H_
#define RECSYS_MODEL_ENCODERS_TORCH_RUNTIME_H_

namespace recsys {

// Sets LibTorch's intra-op threads; n <= 0 keeps its default (all cores).
void SetTorchThreads(int n);
int TorchThreads();

}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_TORCH_RUNTIME_H_
