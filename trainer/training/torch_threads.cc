#include "trainer/training/torch_threads.h"

#include <dlfcn.h>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include "absl/strings/str_cat.h"

namespace recsys {
namespace {

// OpenBLAS's setter, when the process has it (Debian's LibTorch does; a
// CUDA LibTorch from the PyTorch package may use MKL or nothing).
bool SetBlasThreads(int n) {
  using Setter = void (*)(int);
  auto set = reinterpret_cast<Setter>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set == nullptr) return false;
  set(n);
  return true;
}

}  // namespace

std::string ConfigureTorchThreads(int n) {
  if (n <= 0) return "LibTorch default threads";
  at::set_num_threads(n);
  const bool blas = SetBlasThreads(n);
  static bool interop_set = false;
  if (!interop_set) {
    interop_set = true;
    try {
      at::set_num_interop_threads(1);
    } catch (const c10::Error&) {
      // Already started (something ran an inter-op task first): keep it.
    }
  }
  return absl::StrCat(n, " intra-op threads, ", blas ? absl::StrCat(n, " OpenBLAS threads") : "no OpenBLAS",
                      ", ", at::get_num_interop_threads(), " inter-op thread(s)");
}

}  // namespace recsys
