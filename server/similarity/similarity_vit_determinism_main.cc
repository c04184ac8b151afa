// Are a backbone's vectors bit-for-bit the same across the ways the
// endpoint and similarity_eval run it? Embeds Fashion-MNIST test images
// with a ViT collection encoder (the server's path: grayscale -> RGB ->
// ViT -> L2-normalised CLS) several ways in one process and reports, for
// each, how many vectors differ from the first run and by how much:
//   repeat      the same call again (same thread, same batches), --repeats
//               times
//   thread      the same call from another thread
//   one_thread  LibTorch intra-op threads set to 1
//   batches_of_7  the images in calls of 7 (other batch shapes)
//   halves      the two halves one after the other (batch shapes of
//               `concurrent`, without the concurrency)
//   concurrent  two threads embedding halves at the same time
// A report (JSON), not a test. The question it answers is README's
// "endpoint vs in-process 2e-5 at P@9-10".
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "common/status_macros.h"
#include "model/encoders/torch_runtime.h"
#include "server/similarity/collection_encoder.h"
#include "server/similarity/fashion_mnist.h"

ABSL_FLAG(std::string, vit_model_dir, "server/similarity/testdata/vit_standin",
          "A ViT model directory (config.json, optional weights).");
ABSL_FLAG(int, images, 2000, "Fashion-MNIST test images to embed.");
ABSL_FLAG(int, threads, 0, "LibTorch intra-op threads for the runs before one_thread (0: default).");
ABSL_FLAG(int, repeats, 3, "How many times the first call is repeated.");
ABSL_FLAG(std::string, json_out, "", "Where to write the JSON report.");

namespace recsys {
namespace similarity {
namespace {

using Vectors = std::vector<float>;

struct Diff {
  int64_t differing = 0;  // vectors with any bit different
  double max_abs = 0;
};

Diff Compare(const Vectors& a, const Vectors& b, int d) {
  Diff out;
  for (size_t i = 0; i < a.size(); i += d) {
    bool differs = false;
    for (int j = 0; j < d; ++j) {
      if (a[i + j] != b[i + j]) differs = true;
      out.max_abs = std::max(out.max_abs, std::fabs(double{a[i + j]} - b[i + j]));
    }
    out.differing += differs;
  }
  return out;
}

absl::Status Run() {
  ASSIGN_OR_RETURN(FashionMnist fm, ReadFashionMnist());
  const int n = std::min<int64_t>(absl::GetFlag(FLAGS_images), fm.test.size());
  std::vector<GrayImage> images;
  for (int i = 0; i < n; ++i) images.push_back(fm.test.Image(i));
  v1::EncoderSpec spec;
  spec.mutable_vit()->set_model_dir(absl::GetFlag(FLAGS_vit_model_dir));
  ASSIGN_OR_RETURN(std::unique_ptr<CollectionEncoder> e,
                   CreateCollectionEncoder(v1::SIMILARITY_IMAGE_CASES, spec));
  const int d = e->dimension();
  auto embed = [&](int from, int to, int per_call) -> absl::StatusOr<Vectors> {
    Vectors out;
    for (int s = from; s < to; s += per_call) {
      std::vector<GrayImage> part(images.begin() + s, images.begin() + std::min(to, s + per_call));
      ASSIGN_OR_RETURN(Vectors v, e->ImageFeaturesBatch(part));
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  };
  if (absl::GetFlag(FLAGS_threads) > 0) SetTorchThreads(absl::GetFlag(FLAGS_threads));
  const int threads = TorchThreads();
  ASSIGN_OR_RETURN(Vectors base, embed(0, n, n));
  std::vector<std::pair<std::string, Vectors>> runs;
  for (int r = 1; r <= absl::GetFlag(FLAGS_repeats); ++r) {
    ASSIGN_OR_RETURN(Vectors v, embed(0, n, n));
    runs.push_back({absl::StrCat("repeat ", r), std::move(v)});
  }
  {
    absl::StatusOr<Vectors> v;
    int seen_threads = 0;
    std::thread t([&] {
      seen_threads = TorchThreads();
      v = embed(0, n, n);
    });
    t.join();
    RETURN_IF_ERROR(v.status());
    runs.push_back({absl::StrCat("thread (sees ", seen_threads, " intra-op threads)"), *v});
  }
  {
    ASSIGN_OR_RETURN(Vectors v, embed(0, n, 7));
    runs.push_back({"batches_of_7", std::move(v)});
  }
  {
    ASSIGN_OR_RETURN(Vectors lo, embed(0, n / 2, n));
    ASSIGN_OR_RETURN(Vectors hi, embed(n / 2, n, n));
    lo.insert(lo.end(), hi.begin(), hi.end());
    runs.push_back({"halves", std::move(lo)});
  }
  {
    absl::StatusOr<Vectors> lo, hi;
    std::thread a([&] { lo = embed(0, n / 2, n); });
    std::thread b([&] { hi = embed(n / 2, n, n); });
    a.join();
    b.join();
    RETURN_IF_ERROR(lo.status());
    RETURN_IF_ERROR(hi.status());
    lo->insert(lo->end(), hi->begin(), hi->end());
    runs.push_back({"concurrent", std::move(*lo)});
  }
  SetTorchThreads(1);
  {
    ASSIGN_OR_RETURN(Vectors v, embed(0, n, n));
    runs.push_back({"one_thread", std::move(v)});
  }
  std::string json = absl::StrFormat(
      "{\n  \"encoder\": \"%s\",\n  \"images\": %d,\n  \"intra_op_threads\": %d,\n  \"runs\": [",
      e->fingerprint(), n, threads);
  std::printf("%s, %d images, %d intra-op threads; vs the first run:\n", e->fingerprint().c_str(),
              n, threads);
  for (size_t i = 0; i < runs.size(); ++i) {
    const Diff diff = Compare(base, runs[i].second, d);
    std::printf("  %-40s %6lld vectors differ, max |diff| %.3g\n", runs[i].first.c_str(),
                static_cast<long long>(diff.differing), diff.max_abs);
    absl::StrAppendFormat(&json, "%s\n    {\"run\": \"%s\", \"differing_vectors\": %d, \"max_abs_diff\": %.6g}",
                          i ? "," : "", runs[i].first, diff.differing, diff.max_abs);
  }
  json += "\n  ]\n}\n";
  const std::string out = absl::GetFlag(FLAGS_json_out);
  if (!out.empty()) RETURN_IF_ERROR(WriteFileAtomically(out, json));
  return absl::OkStatus();
}

}  // namespace
}  // namespace similarity
}  // namespace recsys

int main(int argc, char** argv) {
  recsys::ParseCommandLineWithHelp(
      argc, argv, "Bit-for-bit comparison of ViT vectors across threads and batch shapes (JSON).");
  const absl::Status s = recsys::similarity::Run();
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
