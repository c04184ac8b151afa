// retrieval_bench: measures the retrieval sidecar against FAISS in-process
// and prints one JSON report. Not a test: run it by hand on an idle machine.
//
//   bazel run //retrieval:retrieval_bench -- --n=100000 --dim=64
//   ... --hnsw_n=1000000 --hnsw_dir=/var/tmp/retrieval_bench   (slow build,
//   cached in hnsw_dir through the sidecar's own snapshots)
//
// The server (RetrievalService + ServiceServer) runs in this process and the
// clients reach it over TCP on loopback with real gRPC channels; both share
// the machine's cores, as a sidecar and its caller would.
#include <dirent.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <numeric>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "common/metrics.h"
#include "common/server.h"
#include "faiss/IndexFlat.h"
#include "faiss/utils/distances.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "proto/retrieval.grpc.pb.h"
#include "retrieval/background_free.h"
#include "retrieval/collection.h"
#include "retrieval/collection_store.h"
#include "retrieval/distance_kernels.h"
#include "retrieval/fast_flat_index.h"
#include "retrieval/malloc_tuning.h"
#include "retrieval/retrieval_service.h"
#include "retrieval/test_util.h"
#include "retrieval/vector_index.h"
#include "absl/synchronization/mutex.h"
#include <omp.h>

ABSL_FLAG(int64_t, n, 100000, "Vectors in the Flat collection.");
ABSL_FLAG(int, dim, 64, "Dimension.");
ABSL_FLAG(int, k, 10, "Results per query.");
ABSL_FLAG(int, queries, 2000, "Sequential queries per latency run.");
ABSL_FLAG(int, clients, 16, "Concurrent clients for the throughput run.");
ABSL_FLAG(double, seconds, 10, "Duration of each throughput run.");
ABSL_FLAG(int, max_batch_size, 64, "Service batching: max batch.");
ABSL_FLAG(int, search_threads, 1, "Service batching: worker threads.");
ABSL_FLAG(int, blas_database_bs, 0, "faiss::distance_compute_blas_database_bs (0: keep).");
ABSL_FLAG(int, omp_per_batch, 1, "Service batching: OpenMP threads per batch.");
ABSL_FLAG(bool, inline_when_idle, false, "Service batching: run_inline_when_idle.");
ABSL_FLAG(int, blas_threshold, 2, "Service: faiss_blas_threshold.");
ABSL_FLAG(bool, diag, false, "Diagnostics only: interleave FAISS call variants in-process, print, exit.");
ABSL_FLAG(bool, batch_sweep, false,
          "Only compare, in process, per-query cost of batched Flat search: "
          "the sidecar's blocked kernel vs FAISS's BLAS path, by batch size.");
ABSL_FLAG(int64_t, during_build_n, 100000,
          "Vectors of the HNSW32 collection built while one client searches "
          "the Flat one (latency during a build; 0: skip).");
ABSL_FLAG(int, during_publish, 6,
          "Publishes of the Flat collection (a tenth of it rewritten each "
          "time) while one client searches it (0: skip).");
ABSL_FLAG(int, build_nice, 10, "Service: build_nice.");
ABSL_FLAG(int, build_threads, 0, "Service: build_threads (0: all cores but one).");
ABSL_FLAG(int64_t, hnsw_n, 0, "Vectors for the HNSW32 run (0: skip).");
ABSL_FLAG(std::string, hnsw_dir, "/var/tmp/retrieval_bench",
          "Data dir that caches the HNSW collection between runs.");
ABSL_FLAG(int, hnsw_ef_construction, 40,
          "efConstruction of the HNSW32 run's collection.");
ABSL_FLAG(int, hnsw_queries, 1000, "Queries for HNSW recall and latency.");
ABSL_FLAG(std::vector<std::string>, hnsw_ef,
          std::vector<std::string>({"16", "32", "64", "128", "256", "384",
                                    "416", "448", "512", "768"}),
          "efSearch values of the HNSW sweep.");
ABSL_FLAG(bool, hnsw_service, true, "HNSW sweep through the service.");
ABSL_FLAG(int, busy_neighbors, 0,
          "Diagnostic: threads at nice 19 that spin for the whole run, so no "
          "vCPU goes idle. Separates the cost of waking an idle vCPU (large "
          "on small VMs) from the service's own; not for reported figures.");
ABSL_FLAG(bool, hnsw_in_process, true,
          "HNSW sweep in process: the live snapshot's index deserialized and "
          "searched directly (the walk without gRPC).");

namespace pb = ::recsys::v1;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

double CpuMs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double ProcessCpuMs() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double Ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

json Percentiles(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double p) { return ms[std::min(ms.size() - 1, size_t(p * ms.size()))]; };
  return {{"p50_ms", at(0.50)}, {"p90_ms", at(0.90)}, {"p99_ms", at(0.99)},
          {"mean_ms", std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size()}};
}

// j of the key "item<j>" (UpsertRange's keys).
int64_t KeyNumber(absl::string_view key) {
  int64_t j = -1;
  if (!absl::ConsumePrefix(&key, "item") || !absl::SimpleAtoi(key, &j)) {
    return -1;
  }
  return j;
}

// One efSearch point of an HNSW sweep.
json SweepPoint(int ef, double recall, const std::vector<double>& ms) {
  json p = Percentiles(ms);
  return {{"ef_search", ef},
          {"recall_at_10", recall},
          {"p50_ms", p["p50_ms"]},
          {"p99_ms", p["p99_ms"]}};
}

// AnonHugePages of this process (transparent huge pages in use), KiB.
int64_t AnonHugePagesKb() {
  std::ifstream f("/proc/self/smaps_rollup");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("AnonHugePages:", 0) == 0) return std::stoll(line.substr(14));
  }
  return -1;
}

int64_t RssBytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

// CPU time (ns) of every thread of this process, by "tid name".
std::map<std::string, int64_t> ThreadCpuNs() {
  std::map<std::string, int64_t> out;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return out;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const std::string base = absl::StrCat("/proc/self/task/", e->d_name);
    std::ifstream sched(base + "/schedstat"), comm(base + "/comm");
    int64_t ns = 0;
    std::string name;
    sched >> ns;
    std::getline(comm, name);
    out[absl::StrCat(e->d_name, " ", name)] = ns;
  }
  closedir(dir);
  return out;
}

// Per-thread CPU ms per call between two ThreadCpuNs() snapshots.
json ThreadCpuPerCall(const std::map<std::string, int64_t>& before,
                      const std::map<std::string, int64_t>& after,
                      int calls) {
  json out = json::object();
  for (const auto& [thread, ns] : after) {
    auto it = before.find(thread);
    const double ms = (ns - (it == before.end() ? 0 : it->second)) / 1e6 / calls;
    if (ms >= 0.005) out[thread] = ms;
  }
  return out;
}

pb::SearchRequest Query(const std::string& c, const float* v, int d, int k) {
  pb::SearchRequest req;
  req.set_collection(c);
  req.set_k(k);
  req.add_queries()->mutable_vector()->mutable_values()->Add(v, v + d);
  return req;
}

void CheckOk(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    exit(1);
  }
}

void Check(const grpc::Status& s, const char* what) {
  if (!s.ok()) {
    fprintf(stderr, "%s failed: %s\n", what, s.error_message().c_str());
    exit(1);
  }
}

// One client's sequential searches of `collection`, cycling through
// `queries`, until `stop`: the latency of each, ms.
std::vector<double> SearchUntil(pb::Retrieval::Stub& stub,
                                const std::string& collection,
                                const std::vector<float>& queries, int d,
                                int k, const std::atomic<bool>& stop) {
  const int64_t nq = static_cast<int64_t>(queries.size()) / d;
  std::vector<double> ms;
  for (int64_t i = 0; !stop; ++i) {
    pb::SearchRequest req = Query(collection, &queries[(i % nq) * d], d, k);
    pb::SearchResponse resp;
    grpc::ClientContext ctx;
    const auto t0 = Clock::now();
    Check(stub.Search(&ctx, req, &resp), "search");
    ms.push_back(Ms(Clock::now() - t0));
  }
  return ms;
}

// Upserts keys item<begin>..item<end-1> with rows begin..end-1 of `vectors`.
void UpsertRange(pb::Retrieval::Stub& stub, const std::string& name,
                 const std::vector<float>& vectors, int64_t begin, int64_t end,
                 int d) {
  grpc::ClientContext ctx;
  pb::UpsertResponse resp;
  auto w = stub.Upsert(&ctx, &resp);
  const int64_t batch = 5000;
  for (int64_t i = begin; i < end; i += batch) {
    pb::UpsertRequest req;
    req.set_collection(name);
    for (int64_t j = i; j < std::min(end, i + batch); ++j) {
      pb::Entry* e = req.add_entries();
      e->set_key(absl::StrCat("item", j));
      e->mutable_vector()->mutable_values()->Add(&vectors[j * d],
                                                 &vectors[(j + 1) * d]);
    }
    if (!w->Write(req)) break;
  }
  w->WritesDone();
  Check(w->Finish(), "upsert");
}

// Publishes what is staged and waits until it is live.
void Publish(pb::Retrieval::Stub& stub, const std::string& name) {
  pb::PublishRequest preq;
  preq.set_collection(name);
  preq.set_wait(true);
  pb::PublishResponse presp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(2));
  Check(stub.Publish(&ctx, preq, &presp), "publish");
}

// Creates `name` and loads `vectors` through the real API, unless the store
// already has it live with n entries (the HNSW cache). HNSW factories get
// `ef_construction`.
void Load(pb::Retrieval::Stub& stub, const std::string& name,
          const std::string& factory, const std::vector<float>& vectors,
          int64_t n, int d, int ef_construction = 40) {
  {
    pb::DescribeCollectionRequest req;
    req.set_collection(name);
    pb::DescribeCollectionResponse resp;
    grpc::ClientContext ctx;
    if (stub.DescribeCollection(&ctx, req, &resp).ok() &&
        resp.info().live_version() > 0) {
      fprintf(stderr, "%s: reusing the cached version\n", name.c_str());
      return;
    }
  }
  pb::CreateCollectionRequest creq;
  creq.mutable_config()->set_name(name);
  creq.mutable_config()->set_dimension(d);
  creq.mutable_config()->set_metric(pb::METRIC_INNER_PRODUCT);
  creq.mutable_config()->set_index_factory(factory);
  if (factory.rfind("HNSW", 0) == 0) {
    (*creq.mutable_config()->mutable_build_params())["efConstruction"] =
        absl::StrCat(ef_construction);
  }
  pb::CreateCollectionResponse cresp;
  {
    grpc::ClientContext ctx;
    grpc::Status s = stub.CreateCollection(&ctx, creq, &cresp);
    if (s.error_code() != grpc::StatusCode::ALREADY_EXISTS) Check(s, "create");
  }
  UpsertRange(stub, name, vectors, 0, n, d);
  const auto t0 = Clock::now();
  Publish(stub, name);
  fprintf(stderr, "%s: built %s over %lld vectors in %.1f s\n", name.c_str(),
          factory.c_str(), (long long)n, Ms(Clock::now() - t0) / 1000);
}

// `clients` threads issue one-query calls for `seconds`; returns queries/s.
template <typename Fn>
double Throughput(int clients, double seconds, Fn one_query) {
  std::atomic<int64_t> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      int64_t i = c * 7919;
      while (!stop) {
        one_query(c, i++);
        ++done;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  return done / (Ms(Clock::now() - t0) / 1000);
}

// --busy_neighbors: spinning threads at the lowest priority, stopped and
// joined when the run ends (whichever way main returns).
class BusyNeighbors {
 public:
  explicit BusyNeighbors(int n) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this] {
        setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
        while (!stop_.load(std::memory_order_relaxed)) {
        }
      });
    }
  }
  ~BusyNeighbors() {
    stop_ = true;
    for (std::thread& t : threads_) t.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

}  // namespace

int main(int argc, char** argv) {
  recsys::ParseCommandLineWithHelp(argc, argv, "The retrieval sidecar against FAISS in-process; prints one JSON report.\n  retrieval_bench --n=100000 --dim=64");
  recsys::retrieval::ConfigureMalloc(2);  // as retrieval_server does by default
  if (absl::GetFlag(FLAGS_blas_database_bs) > 0) {
    faiss::distance_compute_blas_database_bs = absl::GetFlag(FLAGS_blas_database_bs);
  }
  const int64_t n = absl::GetFlag(FLAGS_n);
  const int d = absl::GetFlag(FLAGS_dim);
  const int k = absl::GetFlag(FLAGS_k);
  const int nq = absl::GetFlag(FLAGS_queries);
  BusyNeighbors busy(absl::GetFlag(FLAGS_busy_neighbors));
  json report;
  report["busy_neighbors"] = absl::GetFlag(FLAGS_busy_neighbors);
  report["machine_cores"] = std::thread::hardware_concurrency();
  report["n"] = n;
  report["dim"] = d;
  report["k"] = k;

  if (absl::GetFlag(FLAGS_batch_sweep)) {
    std::vector<float> base = recsys::retrieval::RandomUnitVectors(n, d, 1);
    std::vector<float> queries = recsys::retrieval::RandomUnitVectors(256, d, 2);
    recsys::retrieval::FastFlatIndex index(d, faiss::METRIC_INNER_PRODUCT);
    index.add(n, base.data());
    recsys::retrieval::MoveToHugePages(&index);  // as the service does
    const int saved = faiss::distance_compute_blas_threshold;
    faiss::distance_compute_blas_threshold = 1;  // FAISS: BLAS at any size
    json sweep = json::array();
    for (int nq : {1, 2, 4, 8, 16, 32, 64, 128, 255}) {
      std::vector<float> dist(nq * k);
      std::vector<faiss::Index::idx_t> lab(nq * k);
      double per_query[2];
      for (int blas = 0; blas < 2; ++blas) {
        std::vector<double> ms;
        for (int rep = 0; rep < 20; ++rep) {
          const auto t0 = Clock::now();
          if (blas) {
            index.faiss::IndexFlat::search(nq, queries.data(), k, dist.data(),
                                           lab.data());
          } else {
            index.search(nq, queries.data(), k, dist.data(), lab.data());
          }
          ms.push_back(Ms(Clock::now() - t0) / nq);
        }
        per_query[blas] = Percentiles(ms)["p50_ms"].get<double>();
      }
      sweep.push_back({{"batch", nq},
                       {"sidecar_kernel_ms_per_query", per_query[0]},
                       {"faiss_blas_ms_per_query", per_query[1]}});
    }
    faiss::distance_compute_blas_threshold = saved;
    printf("%s\n", json{{"n", n}, {"dim", d}, {"kernel", recsys::retrieval::DistanceKernelName()},
                        {"sweep", sweep}}.dump(2).c_str());
    return 0;
  }
  const std::string data_dir = recsys::retrieval::FreshTestDir("retrieval_bench_flat");
  recsys::retrieval::RetrievalService::Options so;
  so.batching.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  so.batching.num_threads = absl::GetFlag(FLAGS_search_threads);
  so.batching.run_inline_when_idle = absl::GetFlag(FLAGS_inline_when_idle);
  so.batching.omp_threads_per_batch = absl::GetFlag(FLAGS_omp_per_batch);
  so.faiss_blas_threshold = absl::GetFlag(FLAGS_blas_threshold);
  auto service = recsys::retrieval::RetrievalService::Create(so);
  if (!service.ok()) return 1;
  recsys::ServerOptions server_options;
  server_options.metrics_port = -1;
  server_options.max_receive_message_bytes = 256 << 20;
  auto server = recsys::ServiceServer::Create(server_options, {service->get()});
  if (!server.ok()) return 1;
  recsys::retrieval::CollectionStore::Options store_options;
  store_options.data_dir = data_dir;
  store_options.build_threads = absl::GetFlag(FLAGS_build_threads);
  store_options.build_nice = absl::GetFlag(FLAGS_build_nice);
  (*service)->SetStore(*recsys::retrieval::CollectionStore::Open(store_options));
  (*server)->SetServing(true);
  auto channel_args = grpc::ChannelArguments();
  channel_args.SetMaxSendMessageSize(256 << 20);
  std::vector<std::unique_ptr<pb::Retrieval::Stub>> stubs;
  for (int c = 0; c < absl::GetFlag(FLAGS_clients); ++c) {
    // One channel per client, as separate caller processes would have.
    channel_args.SetInt("grpc.channel_id", c);
    stubs.push_back(pb::Retrieval::NewStub(grpc::CreateCustomChannel(
        (*server)->grpc_target(), grpc::InsecureChannelCredentials(), channel_args)));
  }
  pb::Retrieval::Stub& stub = *stubs[0];

  // --- Flat collection: load through the API, then memory. ---
  std::vector<float> base = recsys::retrieval::RandomUnitVectors(n, d, 1);
  std::vector<float> queries = recsys::retrieval::RandomUnitVectors(nq, d, 2);
  malloc_trim(0);
  const int64_t rss0 = RssBytes();
  const struct mallinfo2 mi0 = mallinfo2();
  if (!absl::GetFlag(FLAGS_diag)) Load(stub, "flat", "Flat", base, n, d);
  recsys::retrieval::FlushBackgroundFree();  // what the publish retired
  malloc_trim(0);
  const int64_t rss1 = RssBytes();
  const struct mallinfo2 mi1 = mallinfo2();
  if (getenv("BENCH_MALLOC_STATS")) malloc_stats();
  int64_t key_bytes = 0;
  for (int64_t i = 0; i < n; ++i) key_bytes += absl::StrCat("item", i).size();
  const int64_t raw = n * d * 4;
  report["flat_memory"] = {
      {"rss_delta_bytes", rss1 - rss0},
      {"raw_vector_bytes", raw},
      {"key_payload_bytes", key_bytes},
      {"ratio_to_raw_plus_keys", double(rss1 - rss0) / (raw + key_bytes)},
      {"ratio_to_raw_vectors", double(rss1 - rss0) / raw},
      // glibc's view after malloc_trim: what is allocated vs held free.
      {"malloc_in_use_bytes", mi1.uordblks + mi1.hblkhd - mi0.uordblks - mi0.hblkhd},
      {"malloc_free_held_bytes", mi1.fordblks - mi0.fordblks},
  };

  if (absl::GetFlag(FLAGS_diag)) {
    // Where does the service's extra per-query time go? Per query, in order:
    // 1 plain IndexFlatIP::search (wall and thread CPU time), 2 the same with
    // an empty SearchParameters (the service's path), 3/4 the service's
    // VectorIndex wrapper over its own copy of the data, twice, then d the
    // wrapper on a worker thread (one OpenMP thread) woken through an
    // absl::Mutex like the batcher: its search time and the hop around it.
    recsys::retrieval::CollectionConfig cfg;
    cfg.name = "diag"; cfg.dimension = d; cfg.metric = recsys::retrieval::Metric::kInnerProduct;
    cfg.index_factory = "Flat";
    auto vi = *recsys::retrieval::VectorIndex::Build(cfg, base.data(), n);
    std::vector<double> a, b, c, c2, e, w, acpu, bcpu;
    std::vector<float> dist(k);
    std::vector<faiss::Index::idx_t> lab(k);
    std::vector<int64_t> lab2(k);
    absl::Mutex mu; int job = -1; Clock::time_point t_start, t_end; bool fin = false;
    std::thread worker([&] {
      omp_set_num_threads(1);
      std::vector<float> wd(k); std::vector<faiss::Index::idx_t> wl(k);
      while (true) {
        int j;
        { absl::MutexLock l(&mu);
          mu.Await(absl::Condition(+[](int* jj) { return *jj >= 0; }, &job));
          j = job; job = -1; if (j == 1 << 30) return; }
        auto ts = Clock::now();
        absl::Status s = vi->Search(&queries[(j % nq) * d], 1, k, {}, wd.data(),
                                    reinterpret_cast<int64_t*>(wl.data()));
        auto te = Clock::now();
        if (!s.ok()) std::fprintf(stderr, "diag search failed: %s\n", s.ToString().c_str());
        absl::MutexLock l(&mu); t_start = ts; t_end = te; fin = true;
      }
    });
    faiss::IndexFlatIP index(d);
    index.add(n, base.data());
    for (int rep = 0; rep < 2; ++rep)
    for (int i = 0; i < nq; ++i) {
      const float* q = &queries[i * d];
      faiss::SearchParameters sp;
      double c0 = CpuMs();
      auto t0 = Clock::now();
      index.search(1, q, k, dist.data(), lab.data());
      a.push_back(Ms(Clock::now() - t0));
      acpu.push_back(CpuMs() - c0);
      c0 = CpuMs();
      t0 = Clock::now();
      index.search(1, q, k, dist.data(), lab.data(), &sp);
      b.push_back(Ms(Clock::now() - t0));
      bcpu.push_back(CpuMs() - c0);
      t0 = Clock::now();
      (void)vi->Search(q, 1, k, {}, dist.data(), lab2.data());
      c.push_back(Ms(Clock::now() - t0));
      t0 = Clock::now();
      (void)vi->Search(q, 1, k, {}, dist.data(), lab2.data());
      c2.push_back(Ms(Clock::now() - t0));
      t0 = Clock::now();
      { absl::MutexLock l(&mu); fin = false; job = i; }
      { absl::MutexLock l(&mu); mu.Await(absl::Condition(&fin)); }
      const auto t1 = Clock::now();
      e.push_back(Ms(t_end - t_start));
      w.push_back(Ms(t1 - t0) - Ms(t_end - t_start));
    }
    { absl::MutexLock l(&mu); job = 1 << 30; }
    worker.join();
    json r = {{"1_faiss_copy_cold", Percentiles(a)},
              {"1_cpu_time", Percentiles(acpu)},
              {"2_faiss_copy_warm_empty_params", Percentiles(b)},
              {"2_cpu_time", Percentiles(bcpu)},
              {"3_wrapper_copy_cold", Percentiles(c)},
              {"4_wrapper_copy_warm", Percentiles(c2)},
              {"d_worker_search", Percentiles(e)},
              {"d_worker_hop_overhead", Percentiles(w)}};
    printf("%s\n", r.dump(2).c_str());
    (*server)->Shutdown();
    return 0;
  }
  // --- In-process FAISS, one query per call. ---
  faiss::IndexFlatIP index(d);
  index.add(n, base.data());
  // The same search with the sidecar's scan kernels, in process: the
  // service minus this is what gRPC, the service and batching cost.
  recsys::retrieval::FastFlatIndex kernel_index(d, faiss::METRIC_INNER_PRODUCT);
  kernel_index.add(n, base.data());
  recsys::retrieval::MoveToHugePages(&kernel_index);  // as the service does
  // Interleaved, so both see the same machine load (other work on a shared
  // 2-core machine swings single-query times by 2x within a minute).
  std::vector<double> local_ms, service_ms, diff_ms, kernel_ms, kernel_diff_ms;
  // CPU time of the whole process (all threads) per call: separates work
  // done from time spent runnable-but-preempted or waiting for a wake-up.
  std::vector<double> local_cpu_ms, service_cpu_ms;
  // Per-thread CPU of the service calls alone, then of the in-process calls.
  json thread_cpu;
  {
    std::vector<float> dist(k);
    std::vector<faiss::Index::idx_t> lab(k);
    auto t0 = ThreadCpuNs();
    for (int i = 0; i < nq; ++i) {
      pb::SearchRequest req = Query("flat", &queries[i * d], d, k);
      pb::SearchResponse resp;
      grpc::ClientContext ctx;
      Check(stub.Search(&ctx, req, &resp), "search");
    }
    auto t1 = ThreadCpuNs();
    for (int i = 0; i < nq; ++i) {
      index.search(1, &queries[i * d], k, dist.data(), lab.data());
    }
    auto t2 = ThreadCpuNs();
    thread_cpu = {{"service_call", ThreadCpuPerCall(t0, t1, nq)},
                  {"in_process_call", ThreadCpuPerCall(t1, t2, nq)}};
  }
  {
    std::vector<float> dist(k);
    std::vector<faiss::Index::idx_t> lab(k);
    for (int i = 0; i < nq; ++i) {
      double c0 = ProcessCpuMs();
      auto t0 = Clock::now();
      index.search(1, &queries[i * d], k, dist.data(), lab.data());
      local_ms.push_back(Ms(Clock::now() - t0));
      local_cpu_ms.push_back(ProcessCpuMs() - c0);
      t0 = Clock::now();
      kernel_index.search(1, &queries[i * d], k, dist.data(), lab.data());
      kernel_ms.push_back(Ms(Clock::now() - t0));
      pb::SearchRequest req = Query("flat", &queries[i * d], d, k);
      pb::SearchResponse resp;
      grpc::ClientContext ctx;
      c0 = ProcessCpuMs();
      t0 = Clock::now();
      Check(stub.Search(&ctx, req, &resp), "search");
      service_ms.push_back(Ms(Clock::now() - t0));
      service_cpu_ms.push_back(ProcessCpuMs() - c0);
      diff_ms.push_back(service_ms.back() - local_ms.back());
      kernel_diff_ms.push_back(service_ms.back() - kernel_ms.back());
    }
  }
  // The fixed cost of a call (gRPC on loopback + service + batcher hand-off),
  // from a 16-vector collection where the FAISS part is negligible.
  std::vector<double> tiny_ms;
  {
    std::vector<float> tiny(base.begin(), base.begin() + 16 * d);
    Load(stub, "tiny", "Flat", tiny, 16, d);
    for (int i = 0; i < nq; ++i) {
      pb::SearchRequest req = Query("tiny", &queries[i * d], d, k);
      pb::SearchResponse resp;
      grpc::ClientContext ctx;
      const auto t0 = Clock::now();
      Check(stub.Search(&ctx, req, &resp), "search");
      tiny_ms.push_back(Ms(Clock::now() - t0));
    }
  }
  json lat_local = Percentiles(local_ms), lat_service = Percentiles(service_ms);
  report["flat_sequential"] = {
      {"in_process_faiss", lat_local},
      {"in_process_sidecar_kernel", Percentiles(kernel_ms)},
      {"paired_difference_vs_sidecar_kernel", Percentiles(kernel_diff_ms)},
      {"distance_kernel", recsys::retrieval::DistanceKernelName()},
      {"service", lat_service},
      {"p50_overhead_ms", lat_service["p50_ms"].get<double>() - lat_local["p50_ms"].get<double>()},
      {"p99_overhead_ms", lat_service["p99_ms"].get<double>() - lat_local["p99_ms"].get<double>()},
      {"paired_difference", Percentiles(diff_ms)},
      {"in_process_faiss_process_cpu", Percentiles(local_cpu_ms)},
      {"service_process_cpu", Percentiles(service_cpu_ms)},
      {"service_call_on_16_vectors", Percentiles(tiny_ms)},
      {"thread_cpu_ms_per_call", thread_cpu},
  };

  // --- Throughput: 16 clients vs in-process one-query-per-call. ---
  const int clients = absl::GetFlag(FLAGS_clients);
  const double secs = absl::GetFlag(FLAGS_seconds);
  const double local_seq_qps = Throughput(1, secs, [&](int, int64_t i) {
    std::vector<float> dist(k);
    std::vector<faiss::Index::idx_t> lab(k);
    index.search(1, &queries[(i % nq) * d], k, dist.data(), lab.data());
  });
  const double local_par_qps = Throughput(clients, secs, [&](int, int64_t i) {
    std::vector<float> dist(k);
    std::vector<faiss::Index::idx_t> lab(k);
    index.search(1, &queries[(i % nq) * d], k, dist.data(), lab.data());
  });
  // The same one-query calls with the sidecar's kernel, in process: the
  // service's throughput over this is what batching adds beyond the kernel.
  const double kernel_par_qps = Throughput(clients, secs, [&](int, int64_t i) {
    std::vector<float> dist(k);
    std::vector<faiss::Index::idx_t> lab(k);
    kernel_index.search(1, &queries[(i % nq) * d], k, dist.data(), lab.data());
  });
  recsys::Histogram* batches =
      recsys::MetricsRegistry::Global()
          .AddHistogram("recsys_retrieval_search_batch_size", "", {"collection"},
                        recsys::SizeBuckets())
          ->WithLabels({"flat"});
  const double batch_count0 = batches->count(), batch_sum0 = batches->sum();
  const double service_qps = Throughput(clients, secs, [&](int c, int64_t i) {
    pb::SearchRequest req = Query("flat", &queries[(i % nq) * d], d, k);
    pb::SearchResponse resp;
    grpc::ClientContext ctx;
    Check(stubs[c]->Search(&ctx, req, &resp), "search");
  });
  report["flat_throughput"] = {
      {"clients", clients},
      {"in_process_one_query_per_call_1_thread_qps", local_seq_qps},
      {"in_process_one_query_per_call_16_threads_qps", local_par_qps},
      {"service_dynamic_batching_qps", service_qps},
      {"service_mean_batch_size",
       (batches->sum() - batch_sum0) / std::max(1.0, batches->count() - batch_count0)},
      {"ratio_vs_best_in_process", service_qps / std::max(local_seq_qps, local_par_qps)},
      {"in_process_sidecar_kernel_16_threads_qps", kernel_par_qps},
      {"ratio_vs_in_process_sidecar_kernel", service_qps / kernel_par_qps},
  };
  // --- One client searching the Flat collection while another collection
  // builds an HNSW32 version in the same server (build_threads). ---
  const int64_t bn = absl::GetFlag(FLAGS_during_build_n);
  if (bn > 0) {
    std::vector<float> bbase = recsys::retrieval::RandomUnitVectors(bn, d, 5);
    std::atomic<bool> built{false};
    double build_s = 0;
    std::thread builder([&] {
      const auto t0 = Clock::now();
      // efConstruction 40 whatever --hnsw_ef_construction says: the build
      // under search is the same from run to run.
      Load(*stubs[1], "during_build", "HNSW32", bbase, bn, d, 40);
      build_s = Ms(Clock::now() - t0) / 1000;
      built = true;
    });
    std::vector<double> ms = SearchUntil(stub, "flat", queries, d, k, built);
    builder.join();
    report["flat_search_during_hnsw_build"] = {
        {"build_vectors", bn},
        {"build_threads", absl::GetFlag(FLAGS_build_threads)},
        {"build_nice", absl::GetFlag(FLAGS_build_nice)},
        {"upsert_and_build_seconds", build_s},
        {"searches", ms.size()},
        {"latency", Percentiles(ms)},
        {"idle_latency", lat_service},
    };
  }
  // --- One client searching the Flat collection while another rewrites a
  // tenth of it and publishes, again and again: version swaps, and older
  // versions leaving the window (versions_to_keep) and being freed. ---
  const int publishes = absl::GetFlag(FLAGS_during_publish);
  if (publishes > 0) {
    std::vector<float> fresh = recsys::retrieval::RandomUnitVectors(n, d, 6);
    std::atomic<bool> done{false};
    std::vector<double> publish_s;
    std::thread publisher([&] {
      for (int p = 0; p < publishes; ++p) {
        const int64_t begin = (p % 10) * (n / 10);
        const auto t0 = Clock::now();
        UpsertRange(*stubs[1], "flat", fresh, begin, begin + n / 10, d);
        Publish(*stubs[1], "flat");
        publish_s.push_back(Ms(Clock::now() - t0) / 1000);
      }
      done = true;
    });
    std::vector<double> ms = SearchUntil(stub, "flat", queries, d, k, done);
    publisher.join();
    // Memory with the window full, by the versions' own accounting (the
    // process RSS here also holds this bench's in-process baseline indexes
    // and `fresh`): every loaded version holds its rows.
    pb::ListVersionsRequest lreq;
    lreq.set_collection("flat");
    pb::ListVersionsResponse lresp;
    {
      grpc::ClientContext ctx;
      Check(stub.ListVersions(&ctx, lreq, &lresp), "list versions");
    }
    int loaded = 0;
    int64_t version_bytes = 0;  // the versions' own accounting
    for (const pb::VersionInfo& v : lresp.versions()) {
      if (v.state() == pb::VERSION_READY || v.state() == pb::VERSION_LIVE) {
        ++loaded;
        version_bytes += v.memory_bytes();
      }
    }
    json lat = Percentiles(ms);
    lat["max_ms"] = *std::max_element(ms.begin(), ms.end());
    report["flat_search_during_publishes"] = {
        {"publishes", publishes},
        {"build_nice", absl::GetFlag(FLAGS_build_nice)},
        {"entries_rewritten_per_publish", n / 10},
        {"upsert_and_publish_seconds", publish_s},
        {"searches", ms.size()},
        {"latency", lat},
        {"idle_latency", lat_service},
        {"loaded_versions_after", loaded},
        {"loaded_versions_memory_bytes", version_bytes},
        {"loaded_versions_memory_ratio_to_raw_plus_keys",
         double(version_bytes) / (loaded * (raw + key_bytes))},
    };
  }
  fprintf(stderr, "%s\n", report.dump(2).c_str());

  // --- HNSW32: recall@10 vs exact and latency, cached between runs. ---
  const int64_t hn = absl::GetFlag(FLAGS_hnsw_n);
  if (hn > 0) {
    recsys::retrieval::RetrievalService::Options ho = so;
    auto hservice = recsys::retrieval::RetrievalService::Create(ho);
    auto hserver = recsys::ServiceServer::Create(server_options, {hservice->get()});
    recsys::retrieval::CollectionStore::Options hso;
    hso.data_dir = absl::GetFlag(FLAGS_hnsw_dir);
    // Nothing searches while the cache builds: use every core.
    hso.build_threads = static_cast<int>(std::thread::hardware_concurrency());
    const auto r0 = Clock::now();
    (*hservice)->SetStore(*recsys::retrieval::CollectionStore::Open(hso));
    const double restore_s = Ms(Clock::now() - r0) / 1000;
    auto hstub = pb::Retrieval::NewStub(grpc::CreateCustomChannel(
        (*hserver)->grpc_target(), grpc::InsecureChannelCredentials(), channel_args));
    std::vector<float> hbase = recsys::retrieval::RandomUnitVectors(hn, d, 3);
    const std::string name = absl::StrCat("hnsw32_", hn, "_", d, "_efc",
                                          absl::GetFlag(FLAGS_hnsw_ef_construction));
    Load(*hstub, name, "HNSW32", hbase, hn, d,
         absl::GetFlag(FLAGS_hnsw_ef_construction));
    const int hq = absl::GetFlag(FLAGS_hnsw_queries);
    std::vector<float> hqueries = recsys::retrieval::RandomUnitVectors(hq, d, 4);
    faiss::IndexFlatIP exact(d);
    exact.add(hn, hbase.data());
    std::vector<float> dist(hq * k);
    std::vector<faiss::Index::idx_t> truth(hq * k);
    exact.search(hq, hqueries.data(), k, dist.data(), truth.data());
    std::vector<int> efs;
    for (const std::string& e : absl::GetFlag(FLAGS_hnsw_ef)) efs.push_back(std::stoi(e));
    json runs = json::array();
    for (int ef : absl::GetFlag(FLAGS_hnsw_service) ? efs : std::vector<int>()) {
      std::vector<double> ms;
      int64_t hits = 0;
      for (int i = 0; i < hq; ++i) {
        pb::SearchRequest req = Query(name, &hqueries[i * d], d, k);
        req.mutable_params()->set_ef_search(ef);
        pb::SearchResponse resp;
        grpc::ClientContext ctx;
        const auto t0 = Clock::now();
        Check(hstub->Search(&ctx, req, &resp), "hnsw search");
        ms.push_back(Ms(Clock::now() - t0));
        for (const auto& h : resp.results(0).hits()) {
          const int64_t id = KeyNumber(h.key());
          for (int j = 0; j < k; ++j) hits += truth[i * k + j] == id;
        }
      }
      runs.push_back(SweepPoint(ef, double(hits) / (hq * k), ms));
    }
    json in_process = json::array();
    if (absl::GetFlag(FLAGS_hnsw_in_process)) {
      // The same walk the service runs, on the same snapshot, minus gRPC.
      (*hserver)->Shutdown();
      hservice->reset();
      // The collection opened as the store does; its live version's index.
      recsys::retrieval::CollectionOptions co;
      co.dir = recsys::JoinPath(hso.data_dir, name);
      auto collection = recsys::retrieval::Collection::Open(co);
      CheckOk(collection.status(), "open the cached collection");
      auto live = (*collection)->GetVersion(0);
      CheckOk(live.status(), "live version");
      const recsys::retrieval::VectorIndex& index = (*live)->index();
      std::vector<float> dv(k);
      std::vector<int64_t> lv(k);
      for (int ef : efs) {
        recsys::retrieval::IndexSearchParams params;
        params.ef_search = ef;
        std::vector<double> ms;
        int64_t hits = 0;
        for (int i = 0; i < hq; ++i) {
          const auto t0 = Clock::now();
          CheckOk(index.Search(&hqueries[i * d], 1, k, params, dv.data(),
                               lv.data()),
                  "in-process hnsw search");
          ms.push_back(Ms(Clock::now() - t0));
          for (int64_t id : lv) {
            if (id < 0) continue;
            const int64_t item = KeyNumber((*live)->key(id));
            for (int j = 0; j < k; ++j) hits += truth[i * k + j] == item;
          }
        }
        in_process.push_back(SweepPoint(ef, double(hits) / (hq * k), ms));
      }
    }
    report["hnsw32"] = {{"n", hn},
                        {"ef_construction", absl::GetFlag(FLAGS_hnsw_ef_construction)},
                        {"restore_seconds", restore_s},
                        {"anon_huge_pages_kb", AnonHugePagesKb()},
                        {"runs", runs},
                        {"in_process", in_process}};
    if (!absl::GetFlag(FLAGS_hnsw_in_process)) (*hserver)->Shutdown();
  }
  printf("%s\n", report.dump(2).c_str());
  (*server)->Shutdown();
  recsys::RemoveRecursively(data_dir).IgnoreError();
  return 0;
}
