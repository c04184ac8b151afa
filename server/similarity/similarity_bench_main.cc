// similarity_bench: queries/s through a running similarity_server (encode +
// search), text (SelectExamples) and image (SearchImages by PNG bytes), at
// each --clients count, with the share of the client-observed latency the
// server spent encoding and searching (its x-encode-seconds /
// x-search-seconds trailing metadata). Builds its own collections: verse
// pairs of --range (queries: --text_queries held-out verses) and the first
// --index_images Fashion-MNIST training images (queries: test images).
// Writes a JSON report (--json_out, and stdout). A benchmark, not a test.
//
// --index_servers=A,B instead measures IndexExamples through each server
// (sequential calls of --index_batch synthetic examples, one stream each),
// the servers alternating for --index_rounds rounds, so that their figures
// (e.g. the staging log's fdatasync against --unsafe_skip_staging_fsync)
// are taken side by side. Needs no data set.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "grpcpp/grpcpp.h"
#include "model/encoders/image_io.h"
#include "proto/similarity.grpc.pb.h"
#include "server/similarity/fashion_mnist.h"
#include "server/similarity/parallel_corpus.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50061", "similarity_server host:port.");
ABSL_FLAG(std::string, range, "Genesis 1:1-Revelation 22:21", "Verse pairs indexed.");
ABSL_FLAG(int, text_queries, 500, "Held-out verses used as queries.");
ABSL_FLAG(int, index_images, 60000, "Fashion-MNIST training images indexed.");
ABSL_FLAG(int, query_images, 1000, "Fashion-MNIST test images used as queries.");
ABSL_FLAG(std::string, clients, "1,8", "Concurrent clients (one channel each).");
ABSL_FLAG(double, seconds, 5, "Measured seconds per (kind, clients).");
ABSL_FLAG(int, k, 4, "Examples / hits per query.");
ABSL_FLAG(std::string, json_out, "", "Where to write the report.");
ABSL_FLAG(std::string, index_servers, "",
          "Index mode: comma-separated similarity_server host:ports, measured side by side.");
ABSL_FLAG(int, index_batch, 16, "Index mode: examples per IndexExamples call.");
ABSL_FLAG(int, index_calls, 200, "Index mode: calls per server per round.");
ABSL_FLAG(int, index_rounds, 3, "Index mode: rounds (servers alternate within each).");

namespace recsys {
namespace similarity {
namespace {

using Stub = v1::Similarity::Stub;

std::unique_ptr<Stub> NewStubFor(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection per client
  return v1::Similarity::NewStub(
      grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
}

std::unique_ptr<Stub> NewStub() { return NewStubFor(absl::GetFlag(FLAGS_server)); }

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(30)));
  return c;
}

void Check(const grpc::Status& s, const char* what) {
  if (!s.ok()) LOG(FATAL) << what << ": " << s.error_message();
}

void Recreate(Stub* stub, const v1::SimilarityCollectionConfig& config) {
  v1::DropSimilarityCollectionRequest drop;
  drop.set_collection(config.name());
  v1::DropSimilarityCollectionResponse dr;
  stub->DropCollection(Ctx().get(), drop, &dr);
  v1::CreateSimilarityCollectionRequest create;
  *create.mutable_config() = config;
  v1::CreateSimilarityCollectionResponse cr;
  Check(stub->CreateCollection(Ctx().get(), create, &cr), "CreateCollection");
}

void PublishNow(Stub* stub, const std::string& name) {
  v1::PublishSimilarityRequest r;
  r.set_collection(name);
  v1::PublishSimilarityResponse out;
  Check(stub->Publish(Ctx().get(), r, &out), "Publish");
}

double Trailing(const grpc::ClientContext& ctx, const char* key) {
  auto it = ctx.GetServerTrailingMetadata().find(key);
  double v = 0;
  if (it != ctx.GetServerTrailingMetadata().end()) {
    absl::SimpleAtod(std::string(it->second.data(), it->second.size()), &v);
  }
  return v;
}

// One query by client `c` (its i-th); returns (encode, search) seconds.
using QueryFn = std::function<std::pair<double, double>(Stub* stub, int c, int64_t i)>;

std::string Measure(const char* kind, const QueryFn& query, int clients) {
  std::vector<std::unique_ptr<Stub>> stubs;
  for (int c = 0; c < clients; ++c) stubs.push_back(NewStub());
  for (int c = 0; c < clients; ++c) query(stubs[c].get(), c, 0);  // warm connections
  std::atomic<bool> stop{false};
  std::vector<int64_t> count(clients, 0);
  std::vector<double> encode(clients, 0), search(clients, 0), latency(clients, 0);
  std::vector<std::vector<double>> lat(clients);
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int64_t i = 0; !stop.load(); ++i) {
        const absl::Time t = absl::Now();
        auto [e, s] = query(stubs[c].get(), c, i);
        const double l = absl::ToDoubleSeconds(absl::Now() - t);
        encode[c] += e;
        search[c] += s;
        latency[c] += l;
        lat[c].push_back(l);
        ++count[c];
      }
    });
  }
  absl::SleepFor(absl::Seconds(absl::GetFlag(FLAGS_seconds)));  // the measured interval, not a synchronisation
  stop = true;
  for (auto& t : threads) t.join();
  const double wall = absl::ToDoubleSeconds(absl::Now() - start);
  int64_t n = 0;
  double e = 0, s = 0, l = 0;
  std::vector<double> all;
  for (int c = 0; c < clients; ++c) {
    n += count[c];
    e += encode[c];
    s += search[c];
    l += latency[c];
    all.insert(all.end(), lat[c].begin(), lat[c].end());
  }
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all.empty() ? 0 : all[std::min(all.size() - 1, size_t(p * all.size()))]; };
  return absl::StrFormat(
      "{\"kind\": \"%s\", \"clients\": %d, \"queries\": %d, \"qps\": %.1f, \"p50_ms\": %.2f, "
      "\"p99_ms\": %.2f, \"encode_share\": %.3f, \"search_share\": %.3f, \"other_share\": %.3f}",
      kind, clients, n, n / wall, 1e3 * pct(0.5), 1e3 * pct(0.99), e / l, s / l, 1 - (e + s) / l);
}

// Index mode: examples/s of sequential IndexExamples calls per server.
int IndexMain() {
  std::vector<std::string> servers = absl::StrSplit(absl::GetFlag(FLAGS_index_servers), ',');
  const int batch = absl::GetFlag(FLAGS_index_batch);
  const int calls = absl::GetFlag(FLAGS_index_calls);
  const int rounds = absl::GetFlag(FLAGS_index_rounds);
  if (batch < 1 || calls < 1 || rounds < 1) LOG(FATAL) << "--index_batch/calls/rounds: >= 1";
  std::vector<std::unique_ptr<Stub>> stubs;
  v1::SimilarityCollectionConfig config;
  config.set_name("bench_index");
  config.set_kind(v1::SIMILARITY_TRANSLATION_EXAMPLES);
  for (const std::string& s : servers) {
    stubs.push_back(NewStubFor(s));
    Recreate(stubs.back().get(), config);
  }
  auto call = [&](Stub* stub, const std::string& prefix) {
    v1::IndexResponse staged;
    auto ctx = Ctx();
    auto w = stub->IndexExamples(ctx.get(), &staged);
    v1::IndexExamplesRequest req;
    req.set_collection("bench_index");
    for (int j = 0; j < batch; ++j) {
      v1::TranslationExample* e = req.add_examples();
      e->set_key(absl::StrCat(prefix, "-", j));
      e->set_source(absl::StrCat("the light of day and the water of the sea ", prefix, " ", j));
      e->set_target(absl::StrCat("la luz del dia ", prefix, " ", j));
      e->set_pair("en-es");
    }
    w->Write(req);
    w->WritesDone();
    Check(w->Finish(), "IndexExamples");
  };
  for (size_t k = 0; k < stubs.size(); ++k) call(stubs[k].get(), "warm");
  std::vector<std::vector<double>> rate(stubs.size());  // examples/s per round
  std::vector<std::vector<double>> lat(stubs.size());   // per call
  for (int r = 0; r < rounds; ++r) {
    for (size_t k = 0; k < stubs.size(); ++k) {
      const absl::Time start = absl::Now();
      for (int i = 0; i < calls; ++i) {
        const absl::Time t = absl::Now();
        call(stubs[k].get(), absl::StrCat("r", r, "c", i));
        lat[k].push_back(absl::ToDoubleSeconds(absl::Now() - t));
      }
      rate[k].push_back(calls * batch / absl::ToDoubleSeconds(absl::Now() - start));
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::vector<std::string> rows;
  const double first = median(rate[0]);
  for (size_t k = 0; k < stubs.size(); ++k) {
    std::vector<double> l = lat[k];
    std::sort(l.begin(), l.end());
    rows.push_back(absl::StrFormat(
        "{\"server\": \"%s\", \"examples_per_s_median\": %.1f, \"rounds\": [%s], "
        "\"call_ms_p50\": %.3f, \"call_ms_p99\": %.3f, \"ratio_to_first\": %.3f}",
        servers[k], median(rate[k]), absl::StrJoin(rate[k], ", ", [](std::string* out, double v) {
          absl::StrAppendFormat(out, "%.1f", v);
        }),
        1e3 * l[l.size() / 2], 1e3 * l[l.size() * 99 / 100], median(rate[k]) / first));
  }
  const std::string json = absl::StrFormat(
      "{\"bench\": \"similarity_index\", \"batch\": %d, \"calls_per_round\": %d, "
      "\"rounds\": %d, \"results\": [\n  %s\n]}\n",
      batch, calls, rounds, absl::StrJoin(rows, ",\n  "));
  std::fputs(json.c_str(), stdout);
  if (!absl::GetFlag(FLAGS_json_out).empty()) {
    absl::Status st = WriteFileAtomically(absl::GetFlag(FLAGS_json_out), json);
    if (!st.ok()) LOG(FATAL) << st;
  }
  return 0;
}

int Main() {
  if (!absl::GetFlag(FLAGS_index_servers).empty()) return IndexMain();
  std::unique_ptr<Stub> admin = NewStub();
  // Text collection.
  DiathekeCorpusOptions co;
  co.range = absl::GetFlag(FLAGS_range);
  absl::StatusOr<std::vector<TranslationPair>> pairs = ReadDiathekeParallelCorpus(co);
  if (!pairs.ok()) LOG(FATAL) << pairs.status();
  const int nq = std::min<int>(absl::GetFlag(FLAGS_text_queries), pairs->size() / 2);
  std::vector<std::string> text_queries;
  {
    v1::SimilarityCollectionConfig config;
    config.set_name("bench_text");
    config.set_kind(v1::SIMILARITY_TRANSLATION_EXAMPLES);
    Recreate(admin.get(), config);
    v1::IndexResponse staged;
    auto ctx = Ctx();
    auto w = admin->IndexExamples(ctx.get(), &staged);
    v1::IndexExamplesRequest req;
    req.set_collection("bench_text");
    const int stride = std::max<int>(1, pairs->size() / nq);
    for (size_t i = 0; i < pairs->size(); ++i) {
      const TranslationPair& p = (*pairs)[i];
      if (static_cast<int>(i) % stride == 0 && static_cast<int>(text_queries.size()) < nq) {
        text_queries.push_back(p.source);
        continue;
      }
      v1::TranslationExample* e = req.add_examples();
      e->set_key(p.key);
      e->set_source(p.source);
      e->set_target(p.target);
      e->set_pair(p.pair);
      if (req.examples_size() == 2000) {
        w->Write(req);
        req.clear_examples();
      }
    }
    if (req.examples_size() > 0) w->Write(req);
    w->WritesDone();
    Check(w->Finish(), "IndexExamples");
    PublishNow(admin.get(), "bench_text");
  }
  // Image collection.
  absl::StatusOr<FashionMnist> fm = ReadFashionMnist();
  if (!fm.ok()) LOG(FATAL) << fm.status();
  auto png = [](const LabelledImages& set, int64_t i) {
    RgbImage rgb;
    rgb.width = set.cols;
    rgb.height = set.rows;
    const uint8_t* p = set.pixels.data() + i * set.rows * set.cols;
    for (int j = 0; j < set.rows * set.cols; ++j) rgb.pixels.insert(rgb.pixels.end(), 3, p[j]);
    return *EncodePng(rgb);
  };
  std::vector<std::string> image_queries;
  const int64_t n_index = std::min<int64_t>(absl::GetFlag(FLAGS_index_images), fm->train.size());
  {
    v1::SimilarityCollectionConfig config;
    config.set_name("bench_images");
    config.set_kind(v1::SIMILARITY_IMAGE_CASES);
    Recreate(admin.get(), config);
    v1::IndexResponse staged;
    auto ctx = Ctx();
    auto w = admin->IndexImages(ctx.get(), &staged);
    v1::IndexImagesRequest req;
    req.set_collection("bench_images");
    for (int64_t i = 0; i < n_index; ++i) {
      v1::ImageCase* c = req.add_cases();
      c->set_key(absl::StrCat("train-", i));
      c->set_image(png(fm->train, i));
      (*c->mutable_labels())["class"] = std::string(FashionMnistClassName(fm->train.labels[i]));
      if (req.cases_size() == 2000) {
        w->Write(req);
        req.clear_cases();
      }
    }
    if (req.cases_size() > 0) w->Write(req);
    w->WritesDone();
    Check(w->Finish(), "IndexImages");
    PublishNow(admin.get(), "bench_images");
    for (int64_t i = 0; i < std::min<int64_t>(absl::GetFlag(FLAGS_query_images), fm->test.size()); ++i) {
      image_queries.push_back(png(fm->test, i));
    }
  }
  const int k = absl::GetFlag(FLAGS_k);
  QueryFn text = [&](Stub* stub, int c, int64_t i) {
    v1::SelectExamplesRequest r;
    r.set_collection("bench_text");
    r.set_source(text_queries[(c * 7919 + i) % text_queries.size()]);
    r.set_k(k);
    r.set_pair("en-es");
    v1::SelectExamplesResponse out;
    auto ctx = Ctx();
    Check(stub->SelectExamples(ctx.get(), r, &out), "SelectExamples");
    return std::make_pair(Trailing(*ctx, "x-encode-seconds"), Trailing(*ctx, "x-search-seconds"));
  };
  QueryFn image = [&](Stub* stub, int c, int64_t i) {
    v1::SearchImagesRequest r;
    r.set_collection("bench_images");
    r.set_image(image_queries[(c * 7919 + i) % image_queries.size()]);
    r.set_k(k);
    v1::SearchImagesResponse out;
    auto ctx = Ctx();
    Check(stub->SearchImages(ctx.get(), r, &out), "SearchImages");
    return std::make_pair(Trailing(*ctx, "x-encode-seconds"), Trailing(*ctx, "x-search-seconds"));
  };
  std::vector<std::string> rows;
  for (absl::string_view cs : absl::StrSplit(absl::GetFlag(FLAGS_clients), ',')) {
    int clients = 1;
    if (!absl::SimpleAtoi(cs, &clients) || clients < 1) LOG(FATAL) << "--clients: " << cs;
    rows.push_back(Measure("text", text, clients));
    rows.push_back(Measure("image", image, clients));
  }
  const std::string json = absl::StrFormat(
      "{\"bench\": \"similarity\", \"text_pool\": %d, \"image_index\": %d, \"k\": %d, "
      "\"seconds_each\": %.1f, \"hardware_threads\": %d, \"results\": [\n  %s\n]}\n",
      static_cast<int>(pairs->size()) - nq, n_index, k, absl::GetFlag(FLAGS_seconds),
      static_cast<int>(std::thread::hardware_concurrency()), absl::StrJoin(rows, ",\n  "));
  std::fputs(json.c_str(), stdout);
  if (!absl::GetFlag(FLAGS_json_out).empty()) {
    absl::Status s = WriteFileAtomically(absl::GetFlag(FLAGS_json_out), json);
    if (!s.ok()) LOG(FATAL) << s;
  }
  return 0;
}

}  // namespace
}  // namespace similarity
}  // namespace recsys

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return recsys::similarity::Main();
}
