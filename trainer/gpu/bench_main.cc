// Device benchmark of the IISAN training step, LibTorch only (no Abseil), so
// it builds against the CUDA LibTorch inside a PyTorch wheel (see
// build_and_bench.sh) as well as under Bazel here.
//
// Each step has the shape of an Amazon-Scientific batch: `batch` users of
// `max_len` items, `unique` distinct items through the side network (random
// states of [blocks, width] per modality), in-batch softmax over the distinct
// targets. Prints one JSON line: seconds per step, steps/s, an estimated epoch
// time for `windows` training windows, and peak device memory on CUDA.
//
//   bench --device=cuda --modalities=2 --steps=50
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "model/nn/side_network.h"
#include "model/nn/user_encoder.h"
#include "trainer/training/loss.h"

#if defined(USE_CUDA_MEMORY_STATS)
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace {

std::string Flag(int argc, char** argv, const char* name, const char* def) {
  const std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) return argv[i] + prefix.size();
  }
  return def;
}

void SetAutocast(bool on) {
#if TORCH_VERSION_MAJOR >= 2
  at::autocast::set_autocast_enabled(at::kCUDA, on);
#else
  at::autocast::set_enabled(on);
#endif
  if (!on) at::autocast::clear_cache();
}

}  // namespace

int main(int argc, char** argv) {
  const torch::Device device(Flag(argc, argv, "device", "cpu"));
  const int modalities = std::atoi(Flag(argc, argv, "modalities", "2").c_str());
  const int steps = std::atoi(Flag(argc, argv, "steps", "30").c_str());
  const int64_t batch = std::atoll(Flag(argc, argv, "batch", "64").c_str());
  const int64_t max_len = std::atoll(Flag(argc, argv, "max_len", "10").c_str());
  const int64_t unique = std::atoll(Flag(argc, argv, "unique", "600").c_str());
  const int64_t blocks = std::atoll(Flag(argc, argv, "blocks", "7").c_str());
  const int64_t width = std::atoll(Flag(argc, argv, "width", "768").c_str());
  const int64_t windows = std::atoll(Flag(argc, argv, "windows", "12076").c_str());
  const bool amp = device.is_cuda() && Flag(argc, argv, "amp", "1") == "1";
  try {
    torch::manual_seed(0);
    recsys::IisanItemEncoderOptions eo;
    eo.modalities.push_back({"text", blocks, width});
    if (modalities == 2) eo.modalities.push_back({"image", blocks, width});
    recsys::IisanItemEncoder items(eo);
    recsys::UserEncoder users(recsys::UserEncoderOptions().max_len(max_len));
    items->to(device);
    users->to(device);
    std::vector<torch::Tensor> params = items->parameters();
    for (auto& p : users->parameters()) params.push_back(p);
    torch::optim::Adam opt(params, torch::optim::AdamOptions(1e-3));
    auto fopt = torch::TensorOptions().device(device);
    // States arrive from the host every step, as in training.
    std::vector<torch::Tensor> host_states;
    for (size_t m = 0; m < eo.modalities.size(); ++m) {
      host_states.push_back(torch::randn({unique, blocks, width}).to(torch::kHalf));
    }
    double total = 0;
    for (int step = -3; step < steps; ++step) {  // 3 warm-up steps
      if (device.is_cuda()) torch::cuda::synchronize();
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<torch::Tensor> states;
      for (auto& h : host_states) states.push_back(h.to(device).to(torch::kFloat));
      SetAutocast(amp);
      torch::Tensor emb = items->forward(states);
      torch::Tensor idx = torch::randint(unique, {batch * max_len}, fopt.dtype(torch::kLong));
      torch::Tensor seq = emb.index_select(0, idx).view({batch, max_len, -1});
      torch::Tensor out = users->forward(seq, torch::ones({batch, max_len}, fopt.dtype(torch::kBool)));
      torch::Tensor q = out.reshape({batch * max_len, -1});
      torch::Tensor cands = emb.slice(0, 0, unique / 2);
      torch::Tensor tgt = torch::randint(unique / 2, {batch * max_len}, fopt.dtype(torch::kLong));
      torch::Tensor loss = recsys::InBatchSoftmaxLoss(q, cands, tgt, {}, {});
      SetAutocast(false);
      opt.zero_grad();
      loss.backward();
      opt.step();
      if (device.is_cuda()) torch::cuda::synchronize();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (step >= 0) total += s;
    }
    const double per_step = total / steps;
    const double steps_per_epoch = static_cast<double>((windows + batch - 1) / batch);
    double peak_mb = -1;
#if defined(USE_CUDA_MEMORY_STATS)
    if (device.is_cuda()) {
      auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
      peak_mb = stats.allocated_bytes[0].peak / 1048576.0;
    }
#endif
    std::printf(
        "{\"device\":\"%s\",\"torch\":\"%s\",\"modalities\":%d,\"amp\":%s,\"batch\":%lld,"
        "\"unique_items\":%lld,\"blocks\":%lld,\"width\":%lld,\"seconds_per_step\":%.5f,"
        "\"estimated_epoch_seconds\":%.2f,\"peak_device_memory_mb\":%.1f}\n",
        device.str().c_str(), TORCH_VERSION, modalities, amp ? "true" : "false",
        static_cast<long long>(batch), static_cast<long long>(unique),
        static_cast<long long>(blocks), static_cast<long long>(width), per_step,
        per_step * steps_per_epoch, peak_mb);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "bench failed: %s\n", e.what_without_backtrace());
    return 1;
  }
  return 0;
}
