// recommend_bench: the recommendation server under closed-loop load, with the
// same pipeline in process as the side-by-side reference. JSON on stdout.
//
//   bazel run -c opt //server:recommend_bench -- --seconds=5
//
// Setup: an Amazon-Scientific-sized model version (20,825 items, d = 64,
// window 10; the real item keys and users of ../shared/data when present,
// else a synthetic catalog of the same size), written through
// model/model_version.h with a seeded random user encoder and embeddings,
// popularity counted over the users' training prefixes. A real retrieval
// sidecar process (Flat collection, published by the real publisher) and a
// real recommendation_server process; the load generator is this process
// (C++ gRPC callback clients, closed loop: each client sends its next request
// from the previous one's completion; histories drawn from real users: every
// item but the last). CPU microseconds per request of each process (from
// /proc) and the rest of the machine's load are reported with each level.
//
// Reported: throughput, p50, p99 at each client count; the in-process
// pipeline (load the version, encode one user, brute-force top k with the
// sidecar's distance kernel) at the same thread counts in the same run; the
// encoder's batch-size distribution (from the server's /metrics); and a
// version switch during a run at the largest client count: failed responses
// and mixed-version responses (a sample of responses re-scored against the
// answering version's encoder and embeddings).
//
// A benchmark, not a test: it asserts nothing; the report says whether the
// targets (p99 <= 10 ms at 32 clients, throughput >= 0.7x in process) held.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <numeric>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "common/process_tuning.h"
#include "common/status_macros.h"
#include "grpcpp/grpcpp.h"
#include "model/model_publisher.h"
#include "model/model_version.h"
#include "model/nn/user_encoder.h"
#include "nlohmann/json.hpp"
#include "proto/health.grpc.pb.h"
#include "proto/recommender.grpc.pb.h"
#include "retrieval/client/retrieval_client.h"
#include "retrieval/distance_kernels.h"
#include "server/serving_model.h"

ABSL_FLAG(std::string, data, "",
          "amazon-scientific directory (items.tsv, users.tsv); default: "
          "../shared/data/amazon-scientific next to the workspace, else synthetic.");
ABSL_FLAG(std::string, work_dir, "/tmp/recommend_bench", "Scratch directory (wiped).");
ABSL_FLAG(std::string, clients, "1,8,32", "Concurrent clients per level.");
ABSL_FLAG(double, seconds, 5, "Seconds per level.");
ABSL_FLAG(int, k, 10, "Items per request.");
ABSL_FLAG(int, max_batch_size, 32, "Server --max_batch_size.");
ABSL_FLAG(std::string, max_batch_wait, "0s", "Server --max_batch_wait.");
ABSL_FLAG(int, encode_threads, 1, "Server --encode_threads.");
ABSL_FLAG(bool, version_switch, true, "Run the version switch at the largest client count.");
ABSL_FLAG(int, channels, 4, "gRPC channels the clients share.");
ABSL_FLAG(bool, rpc_floor, true,
          "Also time a trivial unary RPC (grpc.health.v1 Check) to the server and to the "
          "sidecar at the largest client count: what one gRPC hop costs here.");
ABSL_FLAG(bool, sidecar_unix_socket, false,
          "The server reaches the sidecar over a Unix domain socket (its --unix_socket) "
          "instead of TCP on loopback.");

namespace recsys {
namespace {

namespace pb = ::recsys::v1;
using json = nlohmann::json;

constexpr int64_t kItems = 20825;
constexpr int64_t kDim = 64;
constexpr int64_t kWindow = 10;

struct Catalog {
  std::vector<std::string> keys;
  std::vector<std::vector<std::string>> users;  // chronological
  std::string source;
};

Catalog LoadCatalog() {
  Catalog c;
  std::string dir = absl::GetFlag(FLAGS_data);
  if (dir.empty()) {
    const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY");
    dir = JoinPath(ws ? ws : ".", "../shared/data/amazon-scientific");
  }
  std::ifstream items(JoinPath(dir, "items.tsv")), users(JoinPath(dir, "users.tsv"));
  if (items && users) {
    std::string line;
    while (std::getline(items, line)) {
      std::vector<std::string> f = absl::StrSplit(line, '\t');
      if (!f.empty() && !f[0].empty()) c.keys.push_back(f[0]);
    }
    while (std::getline(users, line)) {
      std::vector<std::string> f = absl::StrSplit(line, '\t');
      if (f.size() < 2) continue;
      c.users.push_back(absl::StrSplit(f[1], ' ', absl::SkipEmpty()));
    }
    c.source = dir;
    return c;
  }
  // Synthetic, same size: Zipf-ish item choice, 5..20 items per user.
  std::mt19937 rng(7);
  for (int64_t i = 0; i < kItems; ++i) c.keys.push_back(absl::StrCat("item", i));
  std::uniform_real_distribution<double> u(0, 1);
  std::uniform_int_distribution<int> len(5, 20);
  for (int i = 0; i < 12076; ++i) {
    std::vector<std::string> h;
    for (int j = len(rng); j > 0; --j) {
      h.push_back(c.keys[static_cast<int64_t>(std::pow(u(rng), 3.0) * kItems) % kItems]);
    }
    c.users.push_back(std::move(h));
  }
  c.source = "synthetic";
  return c;
}

absl::StatusOr<std::string> WriteVersion(const std::string& models, int64_t number,
                                         const Catalog& c) {
  torch::manual_seed(number);
  UserEncoder encoder(UserEncoderOptions().dim(kDim).num_heads(2).num_layers(2).ffn_dim(256)
                          .max_len(kWindow));
  ModelVersionContents v;
  v.manifest.version = number;
  NetworkConfig& n = v.manifest.network;
  n.model = "sasrec";
  n.num_items = static_cast<int64_t>(c.keys.size());
  n.embedding_dim = kDim;
  n.max_len = kWindow;
  n.num_heads = 2;
  n.num_layers = 2;
  n.ffn_dim = 256;
  v.items.keys = c.keys;
  v.items.dim = kDim;
  torch::Tensor emb = torch::randn({n.num_items, kDim}) / 8.0;
  v.items.values.assign(emb.data_ptr<float>(), emb.data_ptr<float>() + emb.numel());
  for (const auto& p : encoder->named_parameters()) {
    torch::Tensor t = p.value().contiguous();
    v.weights.push_back({kUserEncoderPrefix + p.key(), t.sizes().vec(),
                         std::vector<float>(t.data_ptr<float>(),
                                            t.data_ptr<float>() + t.numel())});
  }
  // Training split: every user's items but the last two.
  std::map<std::string, int64_t> row;
  for (size_t i = 0; i < c.keys.size(); ++i) row[c.keys[i]] = static_cast<int64_t>(i);
  v.item_popularity.assign(c.keys.size(), 0.0f);
  for (const auto& h : c.users) {
    for (size_t j = 0; j + 2 < h.size(); ++j) {
      auto it = row.find(h[j]);
      if (it != row.end()) v.item_popularity[it->second] += 1;
    }
  }
  return WriteModelVersion(models, v);
}

// A child process; killed (SIGTERM, then waited) on destruction.
struct Child {
  pid_t pid = -1;
  ~Child() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      int st;
      waitpid(pid, &st, 0);
    }
  }
};

absl::Status Spawn(const std::string& bin, std::vector<std::string> args, const std::string& log,
                   Child* child) {
  args.insert(args.begin(), bin);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  const int rc = posix_spawn(&child->pid, bin.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return absl::InternalError(absl::StrCat("cannot start ", bin));
  return absl::OkStatus();
}

absl::StatusOr<std::pair<int, int>> AwaitPorts(const std::string& file) {
  const absl::Time give_up = absl::Now() + absl::Seconds(120);
  while (absl::Now() < give_up) {
    absl::StatusOr<std::string> text = ReadFileToString(file);
    if (text.ok() && absl::StrContains(*text, "metrics_port=")) {
      int grpc = 0, metrics = 0;
      for (absl::string_view line : absl::StrSplit(*text, '\n')) {
        if (absl::ConsumePrefix(&line, "grpc_port=")) (void)absl::SimpleAtoi(line, &grpc);
        if (absl::ConsumePrefix(&line, "metrics_port=")) (void)absl::SimpleAtoi(line, &metrics);
      }
      if (grpc > 0) return std::make_pair(grpc, metrics);
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat(file, " never appeared"));
}

std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    const std::string req = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: x\r\n\r\n");
    (void)!write(fd, req.data(), req.size());
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  }
  close(fd);
  return out;
}

// Cumulative bucket counts of the encoder batch-size histogram, by bound.
std::map<double, double> BatchBuckets(int metrics_port) {
  std::map<double, double> out;
  const std::string text = HttpGet(metrics_port, "/metrics");
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, "recsys_recommender_encode_batch_size_bucket{le=\"")) continue;
    const size_t q = line.find('"');
    const size_t sp = line.rfind(' ');
    if (q == absl::string_view::npos || sp == absl::string_view::npos) continue;
    double le = 0, n = 0;
    const absl::string_view bound = line.substr(0, q);
    if (bound == "+Inf") le = 1e30; else (void)absl::SimpleAtod(bound, &le);
    (void)absl::SimpleAtod(line.substr(sp + 1), &n);
    out[le] = n;
  }
  return out;
}

json BatchDistribution(const std::map<double, double>& before,
                       const std::map<double, double>& after) {
  json buckets = json::object();
  double prev = 0, total = 0, lo = 0;
  for (const auto& [le, n] : after) {
    const double cum = n - (before.count(le) ? before.at(le) : 0);
    const double here = cum - prev;
    prev = cum;
    total = cum;
    const std::string name = le >= 1e29 ? absl::StrCat(">", lo)
                                        : (lo + 1 == le || le == 1 ? absl::StrCat(le)
                                                                   : absl::StrCat(lo + 1, "-", le));
    if (here > 0) buckets[name] = here;
    lo = le;
  }
  // The histogram is observed once per user, so these count users by the
  // size of the forward that encoded them.
  return {{"users", total}, {"users_by_batch_size", buckets}};
}

// CPU seconds (user + system) of a process so far, from /proc/PID/stat.
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the parenthesised command name; utime and stime are the
  // 14th and 15th fields of the line (the 12th and 13th after it).
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<absl::string_view> f =
      absl::StrSplit(absl::string_view(text).substr(close + 2), ' ');
  double utime = 0, stime = 0;
  if (f.size() < 13 || !absl::SimpleAtod(f[11], &utime) || !absl::SimpleAtod(f[12], &stime)) {
    return 0;
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double SelfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec * 1e-6;
}

// Busy CPU seconds of the whole machine (every core), from /proc/stat.
double MachineBusySeconds() {
  std::ifstream in("/proc/stat");
  std::string line;
  std::getline(in, line);  // "cpu  user nice system idle iowait irq softirq steal ..."
  std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
  double busy = 0;
  for (size_t i = 1; i < f.size() && i <= 8; ++i) {
    double v = 0;
    if (i == 4 || i == 5) continue;  // idle, iowait
    if (absl::SimpleAtod(f[i], &v)) busy += v;
  }
  return busy / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// CPU use of the bench's processes and of the whole machine.
struct CpuSample {
  double bench = 0;  // this process: the clients, or the in-process pipeline
  double server = 0;
  double sidecar = 0;
  double machine = 0;
};

CpuSample SampleCpu(pid_t server, pid_t sidecar) {
  return {SelfCpuSeconds(), ProcessCpuSeconds(server), ProcessCpuSeconds(sidecar),
          MachineBusySeconds()};
}

// CPU microseconds per request in each process over a run, the cores they
// kept busy, and the rest of the machine's load (other users of the cores).
json CpuReport(const CpuSample& a, const CpuSample& b, int64_t requests, double seconds) {
  const double n = std::max<int64_t>(1, requests);
  const double ours =
      (b.bench - a.bench) + (b.server - a.server) + (b.sidecar - a.sidecar);
  return {{"us_per_request",
           {{"bench", 1e6 * (b.bench - a.bench) / n},
            {"server", 1e6 * (b.server - a.server) / n},
            {"sidecar", 1e6 * (b.sidecar - a.sidecar) / n},
            {"all", 1e6 * ours / n}}},
          {"cores_busy", ours / seconds},
          {"other_processes_cores", std::max(0.0, (b.machine - a.machine) - ours) / seconds}};
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

struct Sampled {
  std::vector<std::string> history;
  pb::RecommendResponse response;
};

struct LevelResult {
  std::vector<double> latency_ms;
  int64_t failed = 0;
  std::string first_failure;
  double seconds = 0;
  std::vector<Sampled> sample;  // every 10th response
  std::map<int64_t, int64_t> by_version;
};

std::vector<std::string> HistoryOf(const Catalog& c, std::mt19937* rng) {
  const auto& u = c.users[std::uniform_int_distribution<size_t>(0, c.users.size() - 1)(*rng)];
  return std::vector<std::string>(u.begin(), u.end() - (u.size() > 1 ? 1 : 0));
}

// Runs `clients` closed-loop clients for `seconds`. Each client's next call
// goes out from its previous one's completion callback (gRPC's callback
// API), so no thread blocks per client and the load generator costs the
// shared cores little: send(t, next) starts client t's next call and calls
// next() from its completion. A client stops when the run is over or when
// give_up(t) (a dead peer fails every call at once: stop then rather than
// spin). `midway`, if set, runs a third of the way in. Returns the seconds
// the run took, once every client has stopped.
double RunClosedLoop(int clients, double seconds, const std::function<bool(int)>& give_up,
                     const std::function<void(int, std::function<void()>)>& send,
                     const std::function<void()>& midway = nullptr) {
  std::atomic<bool> stop{false};
  absl::Mutex mu;
  int running = clients;
  std::function<void(int)> issue = [&](int t) {
    if (stop.load(std::memory_order_relaxed) || give_up(t)) {
      absl::MutexLock lock(&mu);
      --running;
      return;
    }
    send(t, [&issue, t] { issue(t); });
  };
  const absl::Time start = absl::Now();
  for (int t = 0; t < clients; ++t) issue(t);
  if (midway) {
    absl::SleepFor(absl::Seconds(seconds / 3));
    midway();
  }
  while (absl::Now() - start < absl::Seconds(seconds)) absl::SleepFor(absl::Milliseconds(20));
  stop = true;
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(+[](int* n) { return *n == 0; }, &running));
  }
  return absl::ToDoubleSeconds(absl::Now() - start);
}

// One closed-loop Recommend client's state (RunServer).
struct ClientLoop {
  pb::Recommender::Stub* stub = nullptr;
  std::mt19937 rng;
  bool sample = false;
  int64_t i = 0;
  LevelResult result;
  std::vector<std::string> history;
  pb::RecommendRequest request;
  pb::RecommendResponse response;
  std::unique_ptr<grpc::ClientContext> context;
  absl::Time sent;
};

LevelResult RunServer(const std::vector<std::unique_ptr<pb::Recommender::Stub>>& stubs,
                      const Catalog& c, int clients, double seconds, bool sample,
                      const std::function<void()>& midway) {
  std::vector<ClientLoop> loops(clients);
  for (int t = 0; t < clients; ++t) {
    loops[t].stub = stubs[t % stubs.size()].get();
    loops[t].rng.seed(1000 + t);
    loops[t].sample = sample;
  }
  const int k = absl::GetFlag(FLAGS_k);
  auto send = [&](int t, std::function<void()> next) {
    ClientLoop* l = &loops[t];
    l->history = HistoryOf(c, &l->rng);
    l->request.Clear();
    for (const auto& key : l->history) l->request.add_history(key);
    l->request.set_k(k);
    l->response.Clear();
    l->context = std::make_unique<grpc::ClientContext>();
    l->context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    l->sent = absl::Now();
    l->stub->async()->Recommend(l->context.get(), &l->request, &l->response,
                                [l, next = std::move(next)](grpc::Status s) {
      const double ms = absl::ToDoubleMilliseconds(absl::Now() - l->sent);
      if (!s.ok()) {
        if (l->result.failed++ == 0) l->result.first_failure = s.error_message();
      } else {
        l->result.latency_ms.push_back(ms);
        l->result.by_version[l->response.model().version()]++;
        if (l->sample && l->i % 10 == 0) {
          l->result.sample.push_back({l->history, l->response});
        }
      }
      ++l->i;
      next();
    });
  };
  const double took = RunClosedLoop(
      clients, seconds, [&](int t) { return loops[t].result.failed >= 1000; }, send, midway);
  LevelResult r;
  r.seconds = took;
  for (auto& l : loops) {
    LevelResult& p = l.result;
    r.latency_ms.insert(r.latency_ms.end(), p.latency_ms.begin(), p.latency_ms.end());
    r.failed += p.failed;
    if (r.first_failure.empty()) r.first_failure = p.first_failure;
    for (auto& s : p.sample) r.sample.push_back(std::move(s));
    for (auto& [v, n] : p.by_version) r.by_version[v] += n;
  }
  return r;
}

// Closed-loop clients of a trivial unary RPC, the health service's Check
// (answered on the callback thread: parse, a map lookup, reply): what one
// gRPC hop costs the caller and the callee on this machine, with nothing
// behind it. Returns the calls that succeeded; `seconds` is set to the time
// the run took.
int64_t RunHealthChecks(const std::vector<std::unique_ptr<grpc::health::v1::Health::Stub>>& stubs,
                        int clients, double* seconds) {
  // One per client, reused call after call (like ClientLoop).
  struct Client {
    grpc::health::v1::Health::Stub* stub = nullptr;
    std::unique_ptr<grpc::ClientContext> context;
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
  };
  std::atomic<int64_t> ok{0}, failed{0};
  std::vector<Client> slots(clients);
  for (int t = 0; t < clients; ++t) slots[t].stub = stubs[t % stubs.size()].get();
  auto send = [&](int t, std::function<void()> next) {
    Client* c = &slots[t];
    c->context = std::make_unique<grpc::ClientContext>();
    c->context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    c->stub->async()->Check(c->context.get(), &c->request, &c->response,
                            [&, next = std::move(next)](grpc::Status s) {
                              (s.ok() ? ok : failed).fetch_add(1);
                              next();
                            });
  };
  *seconds = RunClosedLoop(clients, *seconds, [&](int) { return failed.load() >= 1000; }, send);
  return ok.load();
}

std::vector<std::unique_ptr<grpc::health::v1::Health::Stub>> HealthStubs(
    const std::string& target, int channels) {
  std::vector<std::unique_ptr<grpc::health::v1::Health::Stub>> stubs;
  for (int i = 0; i < std::max(1, channels); ++i) {
    grpc::ChannelArguments args;
    args.SetInt("bench_channel", i);
    stubs.push_back(grpc::health::v1::Health::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args)));
  }
  return stubs;
}

// The pipeline in process: encode one user, score every item with the
// sidecar's kernel, top k without the history.
LevelResult RunInProcess(const ServingModel& model, const Catalog& c, int threads_n,
                         double seconds) {
  std::vector<LevelResult> per(threads_n);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  const int k = absl::GetFlag(FLAGS_k);
  const int64_t n = model.info().num_items;
  for (int t = 0; t < threads_n; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1000 + t);
      std::vector<float> scores(n);
      std::vector<int64_t> order(n);
      while (!stop.load(std::memory_order_relaxed)) {
        std::vector<std::string> h = HistoryOf(c, &rng);
        const absl::Time t0 = absl::Now();
        std::vector<int64_t> rows = model.KnownRows(h, nullptr);
        if (rows.empty()) continue;
        absl::StatusOr<std::vector<std::vector<float>>> user = model.EncodeRows({rows});
        if (!user.ok()) continue;
        retrieval::InnerProductMany((*user)[0].data(), model.ItemVector(0), n,
                                    static_cast<int>(kDim), scores.data());
        for (int64_t r : rows) scores[r] = -1e30f;
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + k, order.end(),
                          [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
        per[t].latency_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
      }
    });
  }
  absl::SleepFor(absl::Seconds(seconds));
  stop = true;
  for (auto& th : threads) th.join();
  LevelResult r;
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  for (auto& p : per) r.latency_ms.insert(r.latency_ms.end(), p.latency_ms.begin(), p.latency_ms.end());
  return r;
}

json Figures(const LevelResult& r) {
  return {{"requests", r.latency_ms.size()},
          {"failed", r.failed},
          {"throughput_rps", r.latency_ms.size() / r.seconds},
          {"p50_ms", Percentile(r.latency_ms, 0.50)},
          {"p99_ms", Percentile(r.latency_ms, 0.99)}};
}

std::string Runfile(const char* argv0, const std::string& rel) {
  if (PathExists(rel)) return rel;
  return absl::StrCat(argv0, ".runfiles/recsys/", rel);
}

absl::Status Run(const char* argv0) {
  // The in-process reference and the load generator get the servers' settings.
  torch::set_num_threads(1);
  SetBlasThreads(1);
  DisableMutexDeadlockDetection();
  const Catalog catalog = LoadCatalog();
  const std::string work = absl::GetFlag(FLAGS_work_dir);
  RETURN_IF_ERROR(RemoveRecursively(work));
  RETURN_IF_ERROR(CreateDirectories(work));
  const std::string models = JoinPath(work, "models");
  ASSIGN_OR_RETURN(std::string v1_dir, WriteVersion(models, 1, catalog));

  // Always listened on (so both runs start the same processes); used when
  // --sidecar_unix_socket.
  const std::string sidecar_socket = JoinPath(work, "sidecar.sock");
  Child sidecar;
  RETURN_IF_ERROR(Spawn(Runfile(argv0, "retrieval/retrieval_server"),
                        {"--address=127.0.0.1:0", "--metrics_port=-1",
                         absl::StrCat("--data_dir=", JoinPath(work, "sidecar")),
                         absl::StrCat("--unix_socket=", sidecar_socket),
                         absl::StrCat("--port_file=", JoinPath(work, "sidecar.ports"))},
                        JoinPath(work, "sidecar.log"), &sidecar));
  ASSIGN_OR_RETURN(auto sidecar_ports, AwaitPorts(JoinPath(work, "sidecar.ports")));
  RetrievalClient::Options co;
  co.target = absl::StrCat("127.0.0.1:", sidecar_ports.first);
  ASSIGN_OR_RETURN(std::unique_ptr<RetrievalClient> client, RetrievalClient::Create(co));
  // The sidecar answers UNAVAILABLE until it has restored its (empty) state.
  absl::Status published;
  for (int i = 0; i < 100; ++i) {
    published = PublishModelVersion(v1_dir, PublishOptions(), client.get()).status();
    if (!absl::IsUnavailable(published)) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  RETURN_IF_ERROR(published);

  Child server;
  RETURN_IF_ERROR(Spawn(
      Runfile(argv0, "server/recommendation_server"),
      {"--address=127.0.0.1:0", "--metrics_port=0", absl::StrCat("--models_dir=", models),
       absl::StrCat("--retrieval=", absl::GetFlag(FLAGS_sidecar_unix_socket)
                                        ? "unix:" + sidecar_socket
                                        : co.target),
       "--poll_interval=200ms",
       absl::StrCat("--port_file=", JoinPath(work, "server.ports")),
       absl::StrCat("--max_batch_size=", absl::GetFlag(FLAGS_max_batch_size)),
       absl::StrCat("--max_batch_wait=", absl::GetFlag(FLAGS_max_batch_wait)),
       absl::StrCat("--encode_threads=", absl::GetFlag(FLAGS_encode_threads)), "--versions_to_keep=3"},
      JoinPath(work, "server.log"), &server));
  ASSIGN_OR_RETURN(auto server_ports, AwaitPorts(JoinPath(work, "server.ports")));
  std::vector<std::unique_ptr<pb::Recommender::Stub>> stubs;
  for (int i = 0; i < std::max(1, absl::GetFlag(FLAGS_channels)); ++i) {
    grpc::ChannelArguments args;
    args.SetInt("bench_channel", i);  // distinct channels, not one shared subchannel
    stubs.push_back(pb::Recommender::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", server_ports.first), grpc::InsecureChannelCredentials(),
        args)));
  }
  // Wait until the server answers (version 1 loaded, sidecar checked).
  {
    std::mt19937 rng(1);
    absl::Status ready = absl::DeadlineExceededError("the server never answered");
    for (int i = 0; i < 600 && !ready.ok(); ++i) {
      pb::RecommendRequest req;
      for (const auto& k : HistoryOf(catalog, &rng)) req.add_history(k);
      req.set_k(10);
      pb::RecommendResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      if (stubs[0]->Recommend(&ctx, req, &resp).ok()) ready = absl::OkStatus();
      else absl::SleepFor(absl::Milliseconds(100));
    }
    RETURN_IF_ERROR(ready);
  }

  ASSIGN_OR_RETURN(std::unique_ptr<ServingModel> model1, ServingModel::Load(v1_dir));
  json report;
  report["setup"] = {{"items", model1->info().num_items}, {"dim", kDim}, {"window", kWindow},
                     {"users", catalog.users.size()}, {"data", catalog.source},
                     {"k", absl::GetFlag(FLAGS_k)}, {"collection", "Flat"},
                     {"kernel", retrieval::DistanceKernelName()},
                     {"max_batch_size", absl::GetFlag(FLAGS_max_batch_size)},
                     {"max_batch_wait", absl::GetFlag(FLAGS_max_batch_wait)},
                     {"encode_threads", absl::GetFlag(FLAGS_encode_threads)},
                     {"server_to_sidecar", absl::GetFlag(FLAGS_sidecar_unix_socket)
                                               ? "unix socket" : "tcp loopback"},
                     {"seconds_per_level", absl::GetFlag(FLAGS_seconds)},
                     {"cores", std::thread::hardware_concurrency()}};
  const double seconds = absl::GetFlag(FLAGS_seconds);
  std::vector<int> levels;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_clients), ',')) {
    int n = 0;
    if (absl::SimpleAtoi(s, &n) && n > 0) levels.push_back(n);
  }
  json rows = json::array();
  double best_in_process = 0;
  for (int clients : levels) {
    const auto before = BatchBuckets(server_ports.second);
    const CpuSample cpu0 = SampleCpu(server.pid, sidecar.pid);
    LevelResult served = RunServer(stubs, catalog, clients, seconds, false, nullptr);
    const CpuSample cpu1 = SampleCpu(server.pid, sidecar.pid);
    const auto after = BatchBuckets(server_ports.second);
    const CpuSample cpu2 = SampleCpu(server.pid, sidecar.pid);
    LevelResult local = RunInProcess(*model1, catalog, clients, seconds);
    const CpuSample cpu3 = SampleCpu(server.pid, sidecar.pid);
    double load[3] = {0, 0, 0};
    (void)getloadavg(load, 3);
    json row = {{"clients", clients}, {"load_average_1_5_15", {load[0], load[1], load[2]}},
                {"server", Figures(served)},
                {"in_process", Figures(local)},
                {"encoder_batches", BatchDistribution(before, after)},
                {"cpu", {{"server_run", CpuReport(cpu0, cpu1, served.latency_ms.size(),
                                                  served.seconds)},
                         {"in_process_run", CpuReport(cpu2, cpu3, local.latency_ms.size(),
                                                      local.seconds)}}}};
    const double ratio = (served.latency_ms.size() / served.seconds) /
                         std::max(1e-9, local.latency_ms.size() / local.seconds);
    row["throughput_ratio_server_to_in_process"] = ratio;
    best_in_process = std::max(best_in_process, local.latency_ms.size() / local.seconds);
    if (served.failed) row["first_failure"] = served.first_failure;
    rows.push_back(row);
  }
  report["levels"] = rows;
  if (!rows.empty()) {
    const json& last = rows.back();
    report["targets"] = {
        {"clients", last["clients"]},
        {"p99_ms", last["server"]["p99_ms"]},
        {"p99_le_10ms", last["server"]["p99_ms"].get<double>() <= 10.0},
        {"throughput_ratio", last["throughput_ratio_server_to_in_process"]},
        {"ratio_ge_0.7", last["throughput_ratio_server_to_in_process"].get<double>() >= 0.7},
        // The in-process pipeline at its best thread count (on 2 cores,
        // more threads than cores only add switching).
        {"in_process_best_rps", best_in_process},
        {"throughput_ratio_to_best_in_process",
         last["server"]["throughput_rps"].get<double>() / std::max(1e-9, best_in_process)}};
  }

  if (absl::GetFlag(FLAGS_rpc_floor) && !levels.empty()) {
    const int clients = levels.back();
    const int channels = absl::GetFlag(FLAGS_channels);
    json floor = {{"clients", clients}, {"rpc", "grpc.health.v1.Health/Check"}};
    struct Hop {
      const char* name;
      std::string target;
    };
    const Hop hops[] = {{"server_tcp", absl::StrCat("127.0.0.1:", server_ports.first)},
                        {"sidecar_tcp", co.target},
                        {"sidecar_unix", "unix:" + sidecar_socket}};
    for (const Hop& hop : hops) {
      auto health = HealthStubs(hop.target, channels);
      double took = seconds;
      const CpuSample a = SampleCpu(server.pid, sidecar.pid);
      const int64_t calls = RunHealthChecks(health, clients, &took);
      const CpuSample b = SampleCpu(server.pid, sidecar.pid);
      json r = CpuReport(a, b, calls, took);
      r["calls"] = calls;
      r["throughput_rps"] = calls / std::max(1e-9, took);
      floor[hop.name] = r;
    }
    report["rpc_floor"] = floor;
  }

  if (absl::GetFlag(FLAGS_version_switch) && !levels.empty()) {
    const int clients = levels.back();
    absl::Status switched = absl::OkStatus();
    std::string v2_dir;
    absl::Duration publish_took;
    LevelResult run = RunServer(stubs, catalog, clients, seconds * 1.5, true, [&] {
      const absl::Time t0 = absl::Now();
      absl::StatusOr<std::string> dir = WriteVersion(models, 2, catalog);
      if (!dir.ok()) {
        switched = dir.status();
        return;
      }
      v2_dir = *dir;
      switched = PublishModelVersion(v2_dir, PublishOptions(), client.get()).status();
      publish_took = absl::Now() - t0;
    });
    json sw = {{"clients", clients}, {"switch_status", switched.ToString()},
               {"write_and_publish_seconds", absl::ToDoubleSeconds(publish_took)},
               {"requests", run.latency_ms.size()}, {"failed", run.failed},
               {"p99_ms", Percentile(run.latency_ms, 0.99)}};
    json versions = json::object();
    for (auto& [v, n] : run.by_version) versions[absl::StrCat(v)] = n;
    sw["responses_by_version"] = versions;
    if (run.failed) sw["first_failure"] = run.first_failure;
    // Re-score the sample against the answering version.
    std::map<int64_t, std::unique_ptr<ServingModel>> by_version;
    if (!v2_dir.empty()) {
      ASSIGN_OR_RETURN(by_version[2], ServingModel::Load(v2_dir));
    }
    ASSIGN_OR_RETURN(by_version[1], ServingModel::Load(v1_dir));
    int64_t checked = 0, mixed = 0, unknown_version = 0;
    for (const Sampled& s : run.sample) {
      auto it = by_version.find(s.response.model().version());
      if (it == by_version.end()) {
        ++unknown_version;
        continue;
      }
      const ServingModel& m = *it->second;
      absl::StatusOr<std::vector<float>> user = m.EncodeUser(s.history, nullptr);
      bool ok = user.ok();
      for (int i = 0; ok && i < s.response.items_size(); ++i) {
        const int64_t row = m.RowOf(s.response.items(i).key());
        if (row < 0) { ok = false; break; }
        float dot = 0;
        const float* v = m.ItemVector(row);
        for (int64_t j = 0; j < kDim; ++j) dot += v[j] * (*user)[j];
        ok = std::abs(dot - s.response.items(i).score()) <= 1e-4f * std::max(1.0f, std::abs(dot));
      }
      ++checked;
      if (!ok) ++mixed;
    }
    sw["sampled_responses_checked"] = checked;
    sw["mixed_version_responses"] = mixed + unknown_version;
    sw["ok"] = run.failed == 0 && mixed + unknown_version == 0 && switched.ok() &&
               run.by_version.count(2) > 0;
    report["version_switch"] = sw;
  }
  std::cout << report.dump(2) << std::endl;
  return absl::OkStatus();
}

}  // namespace
}  // namespace recsys

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::Status s = recsys::Run(argv[0]);
  if (!s.ok()) {
    std::cerr << s << std::endl;
    return 1;
  }
  return 0;
}
