// similarity_pixel_eval: the weight-free image embedder on Fashion-MNIST.
// Fits the pixel-PCA embedder on the 60,000 training images, embeds them as
// the index, queries with the 10,000 test images by exact inner-product
// top-k (blocked matrix products), and prints micro/macro P@1..P@k and the
// time of each step. With --approximate=FACTORY (a FAISS index_factory
// string, e.g. "IVF256,Flat") it also searches that index and reports its
// recall@k against the exact results and its own P@N. --json_out writes the
// same figures as JSON.
#include <faiss/AutoTune.h>
#include <faiss/Index.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_factory.h>
#include <torch/torch.h>

#include <memory>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "server/similarity/fashion_mnist.h"
#include "server/similarity/pixel_pca_embedder.h"
#include "server/similarity/precision_at_n.h"

ABSL_FLAG(std::string, data_dir, recsys::similarity::kDebianFashionMnistDir,
          "Directory with the four Fashion-MNIST IDX files.");
ABSL_FLAG(int, resolution, recsys::similarity::PixelPcaOptions().resolution,
          "Resize to this many pixels per side.");
ABSL_FLAG(int, components, recsys::similarity::PixelPcaOptions().components,
          "PCA components (output dimension).");
ABSL_FLAG(double, whitening, recsys::similarity::PixelPcaOptions().whitening,
          "Whitening exponent, 0..1.");
ABSL_FLAG(double, whitening_epsilon,
          recsys::similarity::PixelPcaOptions().whitening_epsilon,
          "Whitening regulariser relative to the largest eigenvalue.");
ABSL_FLAG(bool, center, true, "Subtract the mean pixel.");
ABSL_FLAG(int, k, 10, "Results per query; P@1..P@k are reported.");
ABSL_FLAG(std::string, json_out, "", "Also write the figures here as JSON.");
ABSL_FLAG(std::string, approximate, "",
          "FAISS index_factory string of an approximate index to compare "
          "with exact search (empty: none).");
ABSL_FLAG(int, nprobe, 8, "IVF lists probed by --approximate.");

namespace recsys {
namespace similarity {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since)
      .count();
}

std::vector<float> Rows(const LabelledImages& set, int resolution) {
  const size_t d = static_cast<size_t>(resolution) * resolution;
  std::vector<float> rows(set.size() * d);
  for (int64_t i = 0; i < set.size(); ++i) {
    const std::vector<float> r =
        PixelPcaEmbedder::Preprocess(set.Image(i), resolution);
    std::copy(r.begin(), r.end(), rows.begin() + i * d);
  }
  return rows;
}

int Run() {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto data = ReadFashionMnist(absl::GetFlag(FLAGS_data_dir));
  if (!data.ok()) {
    std::fprintf(stderr, "%s\n", data.status().ToString().c_str());
    return 1;
  }
  const double read_s = Seconds(t0);

  PixelPcaOptions options;
  options.resolution = absl::GetFlag(FLAGS_resolution);
  options.components = absl::GetFlag(FLAGS_components);
  options.whitening = absl::GetFlag(FLAGS_whitening);
  options.whitening_epsilon = absl::GetFlag(FLAGS_whitening_epsilon);
  options.center = absl::GetFlag(FLAGS_center);
  const int k = absl::GetFlag(FLAGS_k);

  auto t = Clock::now();
  const std::vector<float> train_rows = Rows(data->train, options.resolution);
  const std::vector<float> test_rows = Rows(data->test, options.resolution);
  const double preprocess_s = Seconds(t);

  t = Clock::now();
  auto embedder = PixelPcaEmbedder::Fit(options, train_rows);
  if (!embedder.ok()) {
    std::fprintf(stderr, "%s\n", embedder.status().ToString().c_str());
    return 1;
  }
  const double fit_s = Seconds(t);

  t = Clock::now();
  auto index = (*embedder)->EmbedRows(train_rows);
  auto queries = (*embedder)->EmbedRows(test_rows);
  if (!index.ok() || !queries.ok()) {
    std::fprintf(stderr, "embedding failed\n");
    return 1;
  }
  const double embed_s = Seconds(t);

  t = Clock::now();
  const int64_t n_index = data->train.size();
  const int64_t n_query = data->test.size();
  const int64_t dim = (*embedder)->dimension();
  std::vector<std::vector<std::string>> result_labels(n_query);
  std::vector<std::vector<std::string>> exact_keys(n_query);
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor xi =
        torch::from_blob(index->data(), {n_index, dim}, torch::kFloat);
    const torch::Tensor xq =
        torch::from_blob(queries->data(), {n_query, dim}, torch::kFloat);
    constexpr int64_t kBlock = 1000;
    for (int64_t b = 0; b < n_query; b += kBlock) {
      const int64_t e = std::min(n_query, b + kBlock);
      const torch::Tensor scores = xq.slice(0, b, e).mm(xi.t());
      const torch::Tensor top = std::get<1>(scores.topk(k, 1)).contiguous();
      const int64_t* ids = top.data_ptr<int64_t>();
      for (int64_t q = b; q < e; ++q) {
        for (int r = 0; r < k; ++r) {
          const int64_t id = ids[(q - b) * k + r];
          result_labels[q].push_back(absl::StrCat(data->train.labels[id]));
          exact_keys[q].push_back(absl::StrCat(id));
        }
      }
    }
  }
  const double search_s = Seconds(t);

  // The approximate index, if asked for.
  const std::string factory = absl::GetFlag(FLAGS_approximate);
  std::vector<std::vector<std::string>> approx_labels(n_query), approx_keys(n_query);
  double approx_build_s = 0, approx_search_s = 0;
  if (!factory.empty()) {
    try {
      t = Clock::now();
      std::unique_ptr<faiss::Index> index_ann(faiss::index_factory(
          dim, factory.c_str(), faiss::METRIC_INNER_PRODUCT));
      index_ann->train(n_index, index->data());
      index_ann->add(n_index, index->data());
      faiss::ParameterSpace().set_index_parameter(
          index_ann.get(), "nprobe", absl::GetFlag(FLAGS_nprobe));
      approx_build_s = Seconds(t);
      t = Clock::now();
      std::vector<float> distances(n_query * k);
      std::vector<faiss::Index::idx_t> labels(n_query * k);
      index_ann->search(n_query, queries->data(), k, distances.data(),
                        labels.data());
      approx_search_s = Seconds(t);
      for (int64_t q = 0; q < n_query; ++q) {
        for (int r = 0; r < k; ++r) {
          const int64_t id = labels[q * k + r];
          if (id < 0) continue;
          approx_labels[q].push_back(absl::StrCat(data->train.labels[id]));
          approx_keys[q].push_back(absl::StrCat(id));
        }
      }
    } catch (const faiss::FaissException& e) {
      std::fprintf(stderr, "--approximate=%s: %s\n", factory.c_str(), e.what());
      return 1;
    }
  }

  std::vector<std::string> query_labels, index_labels;
  for (uint8_t l : data->test.labels) query_labels.push_back(absl::StrCat(l));
  for (uint8_t l : data->train.labels) index_labels.push_back(absl::StrCat(l));
  PrecisionAtNOptions popts;
  popts.ns.clear();
  for (int n = 1; n <= k; ++n) popts.ns.push_back(n);
  auto report = ComputePrecisionAtN(query_labels, result_labels,
                                    CountLabels(index_labels), popts);
  if (!report.ok()) {
    std::fprintf(stderr, "%s\n", report.status().ToString().c_str());
    return 1;
  }

  std::printf("embedder %s\n", (*embedder)->fingerprint().c_str());
  std::printf("index %lld train images, %lld test queries, top %d by inner "
              "product (exact)\n",
              static_cast<long long>(n_index), static_cast<long long>(n_query),
              k);
  std::printf("%-6s %8s %8s\n", "N", "micro", "macro");
  std::string json = absl::StrCat("{\"fingerprint\":\"",
                                  (*embedder)->fingerprint(), "\",\"p_at_n\":[");
  for (size_t i = 0; i < report->ns.size(); ++i) {
    std::printf("P@%-4d %8.4f %8.4f\n", report->ns[i], report->micro[i],
                report->macro[i]);
    absl::StrAppend(&json, i ? "," : "",
                    absl::StrFormat("{\"n\":%d,\"micro\":%.6f,\"macro\":%.6f}",
                                    report->ns[i], report->micro[i],
                                    report->macro[i]));
  }
  std::printf("seconds: read %.2f, preprocess %.2f, fit %.2f, embed %.2f, "
              "search %.2f\n",
              read_s, preprocess_s, fit_s, embed_s, search_s);
  absl::StrAppend(&json,
                  absl::StrFormat("],\"seconds\":{\"read\":%.3f,\"preprocess\":"
                                  "%.3f,\"fit\":%.3f,\"embed\":%.3f,\"search\":"
                                  "%.3f}",
                                  read_s, preprocess_s, fit_s, embed_s,
                                  search_s));
  if (!factory.empty()) {
    auto recall = RecallAtK(approx_keys, exact_keys, k);
    auto approx = ComputePrecisionAtN(query_labels, approx_labels,
                                      CountLabels(index_labels), popts);
    if (!recall.ok() || !approx.ok()) {
      std::fprintf(stderr, "approximate figures failed\n");
      return 1;
    }
    std::printf("approximate %s (nprobe %d): recall@%d %.4f vs exact; P@1 "
                "%.4f micro %.4f macro, P@%d %.4f / %.4f; build %.2f s, "
                "search %.2f s\n",
                factory.c_str(), absl::GetFlag(FLAGS_nprobe), k, *recall,
                approx->micro[0], approx->macro[0], k, approx->micro.back(),
                approx->macro.back(), approx_build_s, approx_search_s);
    absl::StrAppend(
        &json,
        absl::StrFormat(",\"approximate\":{\"index\":\"%s\",\"nprobe\":%d,"
                        "\"recall\":%.6f,\"p1_micro\":%.6f,\"p1_macro\":%.6f,"
                        "\"build_seconds\":%.3f,\"search_seconds\":%.3f}",
                        factory, absl::GetFlag(FLAGS_nprobe), *recall,
                        approx->micro[0], approx->macro[0], approx_build_s,
                        approx_search_s));
  }
  absl::StrAppend(&json, "}\n");
  const std::string json_out = absl::GetFlag(FLAGS_json_out);
  if (!json_out.empty()) {
    absl::Status s = WriteFileAtomically(json_out, json);
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace similarity
}  // namespace recsys

int main(int argc, char** argv) {
  recsys::ParseCommandLineWithHelp(argc, argv, "The weight-free image embedder on Fashion-MNIST: P@1..P@k (exact, and --approximate=FACTORY).");
  return recsys::similarity::Run();
}
