// The similarity endpoint end to end, every component a real process on
// loopback: retrieval_server <- similarity_server <- similarity_eval and
// this test's own client. Small data (2,000 Fashion-MNIST index images, 200
// queries; the ~240 verse pairs of Genesis 1-10): the endpoint's P@N equal
// the in-process figures and an independent numpy brute force to 1e-6, the
// selected examples are the exact top-k by cosine; bad input gets precise
// statuses and changes nothing; a restarted similarity_server answers from
// its stored state. Skips (with a message) when the Debian data is absent.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/test_paths.h"
#include "gtest/gtest.h"
#include "grpcpp/grpcpp.h"
#include "proto/health.grpc.pb.h"
#include "proto/similarity.grpc.pb.h"

namespace recsys {
namespace {

constexpr char kFashion[] = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
constexpr char kDiatheke[] = "/usr/bin/diatheke";
constexpr char kPydicom[] = "/usr/lib/python3/dist-packages/pydicom/data/test_files/";

std::string Runfile(const std::string& path) {
  const char* dir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(dir ? dir : ".", "/recsys/", path);
}

// Starts argv with stdout+stderr to `log` (appended or truncated).
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log, bool append) {
  const pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::fopen(log.c_str(), append ? "a" : "w");
    dup2(fileno(f), 1);
    dup2(fileno(f), 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// Runs argv to completion; stdout+stderr to `log`. Returns the exit status.
int RunToEnd(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = Spawn(argv, log, /*append=*/false);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string Tail(const std::string& path) {
  absl::StatusOr<std::string> s = ReadFileToString(path);
  if (!s.ok()) return "";
  return s->size() > 3000 ? s->substr(s->size() - 3000) : *s;
}

// A server process started with --port_file; waits (bounded) for the port.
struct Process {
  pid_t pid = -1;
  int port = 0;
  std::string log;
  void Start(const std::vector<std::string>& argv_in, const std::string& dir, const std::string& name) {
    const std::string ports = JoinPath(dir, name + ".ports");
    RemoveRecursively(ports).IgnoreError();
    log = JoinPath(dir, name + ".log");
    std::vector<std::string> argv = argv_in;
    argv.push_back("--port_file=" + ports);
    pid = Spawn(argv, log, /*append=*/true);
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      absl::StatusOr<std::string> s = ReadFileToString(ports);
      if (s.ok() && absl::StrContains(*s, "grpc_port=")) {
        const size_t at = s->find("grpc_port=") + 10;
        ASSERT_TRUE(absl::SimpleAtoi(s->substr(at, s->find('\n', at) - at), &port));
        return;
      }
      int status;
      ASSERT_EQ(waitpid(pid, &status, WNOHANG), 0) << name << " exited: " << Tail(log);
      absl::SleepFor(absl::Milliseconds(20));  // polling a file, bounded by the deadline
    }
    FAIL() << name << " did not start: " << Tail(log);
  }
  void Stop(int signal = SIGTERM) {
    if (pid <= 0) return;
    kill(pid, signal);
    int status;
    waitpid(pid, &status, 0);
    pid = -1;
  }
  ~Process() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

// Synthetic translation examples: sentence i shares words with its
// neighbours, so the hashed-text document frequencies depend on every one.
v1::TranslationExample Example(int i) {
  static const char* kWords[] = {"light", "water", "earth", "night", "day", "seed",
                                 "tree", "fruit", "sea", "fish", "bird", "beast"};
  v1::TranslationExample e;
  e.set_key(absl::StrCat("ex-", i));
  e.set_source(absl::StrCat("the ", kWords[i % 12], " and the ", kWords[(i * 5 + 1) % 12],
                            " of ", kWords[(i * 7 + 3) % 12], " ", i));
  e.set_target(absl::StrCat("la ", kWords[i % 12], " ", i));
  e.set_pair("en-es");
  return e;
}

v1::ImageCase Case(const std::string& key, const std::string& image,
                   const std::map<std::string, std::string>& labels) {
  v1::ImageCase c;
  c.set_key(key);
  c.set_image(image);
  c.mutable_labels()->insert(labels.begin(), labels.end());
  return c;
}

class SimilarityE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(TestTempPath("similarity_e2e"));
    RemoveRecursively(*dir_).IgnoreError();
    ASSERT_TRUE(CreateDirectories(*dir_).ok());
    retrieval_ = new Process;
    retrieval_->Start({Runfile("retrieval/retrieval_server"), "--data_dir=" + JoinPath(*dir_, "r"),
                       "--metrics_port=-1"},
                      *dir_, "retrieval");
    similarity_ = new Process;
    StartSimilarity();
  }
  static void StartSimilarity(const std::vector<std::string>& extra_flags = {}) {
    std::vector<std::string> argv = {Runfile("server/similarity/similarity_server"),
                                     absl::StrCat("--retrieval=127.0.0.1:", retrieval_->port),
                                     "--state_dir=" + JoinPath(*dir_, "s"), "--metrics_port=-1"};
    argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
    similarity_->Start(argv, *dir_, "similarity");
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(64 << 20);
    stub_ = v1::Similarity::NewStub(
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", similarity_->port),
                                  grpc::InsecureChannelCredentials(), args))
                .release();
  }
  static void TearDownTestSuite() {
    delete similarity_;
    delete retrieval_;
  }
  static std::unique_ptr<grpc::ClientContext> Ctx() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    return c;
  }
  static v1::SimilarityCollectionInfo Describe(const std::string& name) {
    v1::DescribeSimilarityCollectionRequest r;
    r.set_collection(name);
    v1::DescribeSimilarityCollectionResponse out;
    EXPECT_TRUE(stub_->DescribeCollection(Ctx().get(), r, &out).ok());
    return out.info();
  }
  // One message of each kind on an Index stream; the stream's status.
  static grpc::Status Index(const std::string& collection,
                            const std::vector<v1::TranslationExample>& examples) {
    v1::IndexResponse staged;
    auto ctx = Ctx();
    auto w = stub_->IndexExamples(ctx.get(), &staged);
    v1::IndexExamplesRequest r;
    r.set_collection(collection);
    for (const v1::TranslationExample& e : examples) *r.add_examples() = e;
    w->Write(r);
    w->WritesDone();
    return w->Finish();
  }
  static grpc::Status IndexExamples(const std::string& collection, int from, int to) {
    std::vector<v1::TranslationExample> examples;
    for (int i = from; i < to; ++i) examples.push_back(Example(i));
    return Index(collection, examples);
  }
  static grpc::Status IndexCases(const std::string& collection,
                                 const std::vector<v1::ImageCase>& cases,
                                 v1::IndexResponse* staged = nullptr) {
    v1::IndexResponse unused;
    auto ctx = Ctx();
    auto w = stub_->IndexImages(ctx.get(), staged ? staged : &unused);
    v1::IndexImagesRequest r;
    r.set_collection(collection);
    for (const v1::ImageCase& c : cases) *r.add_cases() = c;
    w->Write(r);
    w->WritesDone();
    return w->Finish();
  }
  // Six examples ex-0..ex-5 whose sources use the TorchScript test
  // module's few-word vocabulary.
  static std::vector<v1::TranslationExample> ShortExamples() {
    const std::vector<std::string> sources = {"a b", "c d", "b b c", "d a", "a a a d", "c"};
    std::vector<v1::TranslationExample> examples;
    for (size_t i = 0; i < sources.size(); ++i) {
      v1::TranslationExample e = Example(static_cast<int>(i));
      e.set_source(sources[i]);
      examples.push_back(e);
    }
    return examples;
  }
  static grpc::Status Create(const v1::SimilarityCollectionConfig& config,
                             v1::SimilarityCollectionInfo* info = nullptr) {
    v1::CreateSimilarityCollectionRequest r;
    *r.mutable_config() = config;
    v1::CreateSimilarityCollectionResponse out;
    const grpc::Status s = stub_->CreateCollection(Ctx().get(), r, &out);
    if (info != nullptr) *info = out.info();
    return s;
  }
  static grpc::Status Publish(const std::string& name, v1::SimilarityCollectionInfo* info = nullptr,
                              v1::PublishSimilarityResponse* response = nullptr) {
    v1::PublishSimilarityRequest r;
    r.set_collection(name);
    v1::PublishSimilarityResponse out;
    const grpc::Status s = stub_->Publish(Ctx().get(), r, &out);
    if (info != nullptr) *info = out.info();
    if (response != nullptr) *response = out;
    return s;
  }
  static int Eval(const std::vector<std::string>& extra, const std::string& name) {
    std::vector<std::string> argv = {Runfile("server/similarity/similarity_eval"),
                                     absl::StrCat("--server=127.0.0.1:", similarity_->port),
                                     "--state_dir=" + JoinPath(*dir_, "s"),
                                     "--dump_dir=" + JoinPath(*dir_, name)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunToEnd(argv, JoinPath(*dir_, name + ".log"));
  }
  static int NumpyCheck(const std::string& task, const std::string& name) {
    return RunToEnd({"/usr/bin/python3", Runfile("server/similarity/testdata/similarity_check.py"),
                     task, JoinPath(*dir_, name)},
                    JoinPath(*dir_, name + ".check.log"));
  }

  // Makes the test's TorchScript modules into <dir>/<name> with
  // server/similarity/testdata/make_encoder_modules.py. NOT_FOUND when
  // /usr/bin/python3 lacks torch or numpy (the caller skips), INTERNAL with
  // the log's tail when the script fails.
  static absl::StatusOr<std::string> EncoderModules(const std::string& name) {
    if (RunToEnd({"/usr/bin/python3", "-c", "import torch, numpy"},
                 JoinPath(*dir_, name + ".torch.log")) != 0) {
      return absl::NotFoundError("/usr/bin/python3 lacks torch/numpy (Debian python3-torch)");
    }
    const std::string mods = JoinPath(*dir_, name);
    if (!CreateDirectories(mods).ok() ||
        RunToEnd({"/usr/bin/python3", Runfile("server/similarity/testdata/make_encoder_modules.py"),
                  mods},
                 JoinPath(*dir_, name + ".log")) != 0) {
      return absl::InternalError(Tail(JoinPath(*dir_, name + ".log")));
    }
    return mods;
  }

  static std::string* dir_;
  static Process* retrieval_;
  static Process* similarity_;
  static v1::Similarity::Stub* stub_;
};
std::string* SimilarityE2eTest::dir_ = nullptr;
Process* SimilarityE2eTest::retrieval_ = nullptr;
Process* SimilarityE2eTest::similarity_ = nullptr;
v1::Similarity::Stub* SimilarityE2eTest::stub_ = nullptr;

// Test order matters (one server for the suite): images, translation, bad
// input on both collections, image cases with labels, restart.
TEST_F(SimilarityE2eTest, A_FashionMnistFiguresEqualInProcessAndNumpy) {
  if (!PathExists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  ASSERT_EQ(Eval({"--task=images", "--collection=fm", "--index_limit=2000", "--query_limit=200"}, "fm"), 0)
      << Tail(JoinPath(*dir_, "fm.log"));
  EXPECT_EQ(NumpyCheck("images", "fm"), 0) << Tail(JoinPath(*dir_, "fm.check.log"));
  const std::string report = *ReadFileToString(JoinPath(*dir_, "fm/endpoint.json"));
  // 2,000 index images: P@1 0.83 (README); a broken embedder or search is near 0.1.
  const size_t at = report.find("\"micro\": ") + 9;
  double p1 = 0;
  ASSERT_TRUE(absl::SimpleAtod(report.substr(at, 12), &p1));
  EXPECT_GT(p1, 0.75);
  const v1::SimilarityCollectionInfo info = Describe("fm");
  EXPECT_EQ(info.entry_count(), 2000);
  EXPECT_TRUE(absl::StartsWith(info.encoder_fingerprint(), "pixel_pca/v1 res=16 k=128"));
}

TEST_F(SimilarityE2eTest, B_SelectedExamplesAreTheExactTopK) {
  if (!PathExists(kDiatheke)) GTEST_SKIP() << "diatheke is not installed";
  ASSERT_EQ(Eval({"--task=translation", "--collection=verses", "--range=Genesis 1:1-Genesis 10:32",
                  "--queries=30", "--k=4"},
                 "verses"),
            0)
      << Tail(JoinPath(*dir_, "verses.log"));
  EXPECT_EQ(NumpyCheck("translation", "verses"), 0) << Tail(JoinPath(*dir_, "verses.check.log"));
}

TEST_F(SimilarityE2eTest, C_BadInputGetsPreciseStatusesAndChangesNothing) {
  if (!PathExists(kFashion) || !PathExists(kDiatheke)) GTEST_SKIP() << "needs the data of A and B";
  const v1::SimilarityCollectionInfo fm0 = Describe("fm"), verses0 = Describe("verses");
  ASSERT_GT(verses0.live_version(), 0);
  auto select = [](const std::string& source, const std::string& collection,
                   const std::string& fingerprint) {
    v1::SelectExamplesRequest r;
    r.set_collection(collection);
    r.set_source(source);
    r.set_k(4);
    r.set_pair("en-es");
    r.set_encoder_fingerprint(fingerprint);
    v1::SelectExamplesResponse out;
    return stub_->SelectExamples(Ctx().get(), r, &out);
  };
  auto expect = [](const grpc::Status& s, grpc::StatusCode code, const std::string& text) {
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), text)) << s.error_message();
  };
  expect(select("", "verses", ""), grpc::StatusCode::INVALID_ARGUMENT, "source");
  expect(select(std::string(10 << 20, 'a'), "verses", ""), grpc::StatusCode::INVALID_ARGUMENT,
         "source");
  expect(select("In the beginning", "no_such", ""), grpc::StatusCode::NOT_FOUND, "no_such");
  expect(select("In the beginning", "verses", "hashed_text/v1 dim=256"),
         grpc::StatusCode::FAILED_PRECONDITION, "encoder_fingerprint");
  expect(select("In the beginning", "fm", ""), grpc::StatusCode::FAILED_PRECONDITION,
         "image cases");
  {  // A 10 MB sentence in an index stream: refused, nothing staged.
    v1::TranslationExample big = Example(0);
    big.set_source(std::string(10 << 20, 'a'));
    expect(Index("verses", {big}), grpc::StatusCode::INVALID_ARGUMENT, "examples[0].source");
  }
  auto index_image = [](const std::string& bytes) {
    return IndexCases("fm", {Case("bad", bytes, {{"class", "x"}})});
  };
  auto search_image = [](const std::string& bytes, const std::string& fingerprint) {
    v1::SearchImagesRequest r;
    r.set_collection("fm");
    r.set_image(bytes);
    r.set_k(5);
    r.set_encoder_fingerprint(fingerprint);
    v1::SearchImagesResponse out;
    return stub_->SearchImages(Ctx().get(), r, &out);
  };
  const std::string corrupt_png = std::string("\x89PNG\r\n\x1a\n", 8) + std::string(100, '\x07');
  expect(index_image(corrupt_png), grpc::StatusCode::INVALID_ARGUMENT, "cases[0].image");
  expect(search_image(corrupt_png, ""), grpc::StatusCode::INVALID_ARGUMENT, "image");
  if (PathExists(absl::StrCat(kPydicom, "rtplan.dcm"))) {
    const std::string rtplan = *ReadFileToString(absl::StrCat(kPydicom, "rtplan.dcm"));
    const std::string j2k = *ReadFileToString(absl::StrCat(kPydicom, "JPEG2000.dcm"));
    expect(index_image(rtplan), grpc::StatusCode::INVALID_ARGUMENT, "no pixel data");
    expect(search_image(rtplan, ""), grpc::StatusCode::INVALID_ARGUMENT, "no pixel data");
    expect(index_image(j2k), grpc::StatusCode::INVALID_ARGUMENT, "transfer syntax");
    expect(search_image(j2k, ""), grpc::StatusCode::INVALID_ARGUMENT, "transfer syntax");
    const std::string mr = *ReadFileToString(absl::StrCat(kPydicom, "MR_small.dcm"));
    expect(search_image(mr, "vit/other"), grpc::StatusCode::FAILED_PRECONDITION,
           "encoder_fingerprint");
  }
  {
    v1::SearchImagesRequest r;
    r.set_collection("fm");
    r.set_key("train-0");
    r.set_k(0);
    v1::SearchImagesResponse out;
    expect(stub_->SearchImages(Ctx().get(), r, &out), grpc::StatusCode::INVALID_ARGUMENT, "k");
  }
  const v1::SimilarityCollectionInfo fm1 = Describe("fm"), verses1 = Describe("verses");
  EXPECT_EQ(fm1.DebugString(), fm0.DebugString());
  EXPECT_EQ(verses1.DebugString(), verses0.DebugString());
}

TEST_F(SimilarityE2eTest, D_ImageCasesFiltersAndOwnStudy) {
  if (!PathExists(absl::StrCat(kPydicom, "MR_small.dcm"))) GTEST_SKIP() << "python3-pydicom absent";
  v1::SimilarityCollectionConfig config;
  config.set_name("cases");
  config.set_kind(v1::SIMILARITY_IMAGE_CASES);
  config.mutable_encoder()->mutable_pixel_pca()->set_components(4);
  ASSERT_TRUE(Create(config).ok());
  const std::string mr = *ReadFileToString(absl::StrCat(kPydicom, "MR_small.dcm"));
  const std::string ct = *ReadFileToString(absl::StrCat(kPydicom, "CT_small.dcm"));
  // Three studies; copies of MR and CT under several keys; study s0 holds
  // the MR the queries use.
  std::vector<v1::ImageCase> cases;
  for (int i = 0; i < 6; ++i) {
    const std::map<std::string, std::string> labels = {{"study_id", absl::StrCat("s", i % 3)},
                                                       {"pathology", "none"}};
    cases.push_back(Case(absl::StrCat("mr-", i), mr, labels));
    cases.push_back(Case(absl::StrCat("ct-", i), ct, labels));
  }
  v1::IndexResponse staged;
  ASSERT_TRUE(IndexCases("cases", cases, &staged).ok());
  EXPECT_EQ(staged.staged(), 12);
  ASSERT_TRUE(Publish("cases").ok());
  // DICOM's Modality filled the label; an MR query finds the MRs first.
  v1::SearchImagesRequest q;
  q.set_collection("cases");
  q.set_image(mr);
  q.set_k(12);
  v1::SearchImagesResponse hits;
  ASSERT_TRUE(stub_->SearchImages(Ctx().get(), q, &hits).ok());
  ASSERT_EQ(hits.hits_size(), 12);
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(absl::StartsWith(hits.hits(i).key(), "mr-")) << hits.hits(i).key();
    EXPECT_NEAR(hits.hits(i).score(), 1.0, 1e-5);
    EXPECT_EQ(hits.hits(i).labels().at("modality"), "MR");
  }
  q.set_modality("CT");
  ASSERT_TRUE(stub_->SearchImages(Ctx().get(), q, &hits).ok());
  ASSERT_EQ(hits.hits_size(), 6);
  for (const auto& h : hits.hits()) EXPECT_EQ(h.labels().at("modality"), "CT");
  // By stored key, leaving out the query's own study (s0: mr-0, mr-3, ct-0, ct-3).
  v1::SearchImagesRequest k;
  k.set_collection("cases");
  k.set_key("mr-0");
  k.set_k(12);
  k.set_exclude_same_study(true);
  ASSERT_TRUE(stub_->SearchImages(Ctx().get(), k, &hits).ok());
  EXPECT_EQ(hits.hits_size(), 8);
  for (const auto& h : hits.hits()) EXPECT_NE(h.labels().at("study_id"), "s0") << h.key();
  EXPECT_TRUE(absl::StartsWith(hits.hits(0).key(), "mr-"));
}

TEST_F(SimilarityE2eTest, E_RestartedServerAnswersFromStoredStateAndTakesNewEntries) {
  if (!PathExists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto create = [](const std::string& name) {
    v1::SimilarityCollectionConfig config;
    config.set_name(name);
    config.set_kind(v1::SIMILARITY_TRANSLATION_EXAMPLES);
    return Create(config);
  };
  auto select = [](const std::string& name, const std::string& source) {
    v1::SelectExamplesRequest r;
    r.set_collection(name);
    r.set_source(source);
    r.set_k(5);
    r.set_pair("en-es");
    v1::SelectExamplesResponse out;
    EXPECT_TRUE(stub_->SelectExamples(Ctx().get(), r, &out).ok());
    return out;
  };
  v1::SimilarityCollectionInfo info;
  ASSERT_TRUE(create("grow").ok());
  ASSERT_TRUE(IndexExamples("grow", 0, 40).ok());
  ASSERT_TRUE(Publish("grow", &info).ok());
  const std::string grow_v1 = info.encoder_fingerprint();

  v1::SearchImagesRequest q;
  q.set_collection("fm");
  q.set_key("train-7");
  q.set_k(10);
  v1::SearchImagesResponse before, after;
  ASSERT_TRUE(stub_->SearchImages(Ctx().get(), q, &before).ok());
  similarity_->Stop(SIGKILL);  // no drain, nothing flushed at exit
  StartSimilarity();
  ASSERT_TRUE(stub_->SearchImages(Ctx().get(), q, &after).ok());
  EXPECT_EQ(after.DebugString(), before.DebugString());
  // The query-time encoder is the restored one.
  EXPECT_EQ(Describe("fm").encoder_fingerprint(), before.encoder_fingerprint());
  EXPECT_EQ(Describe("grow").encoder_fingerprint(), grow_v1);

  // The weight-free image collection takes a new case after the restart:
  // the refit runs over the 2,000 restored entries plus it.
  const std::string mr = PathExists(absl::StrCat(kPydicom, "MR_small.dcm"))
                             ? *ReadFileToString(absl::StrCat(kPydicom, "MR_small.dcm"))
                             : "";
  if (!mr.empty()) {
    ASSERT_TRUE(IndexCases("fm", {Case("new", mr, {{"class", "mr"}})}).ok());
    ASSERT_TRUE(Publish("fm", &info).ok());
    EXPECT_EQ(info.entry_count(), 2001);
    EXPECT_NE(info.encoder_fingerprint(), before.encoder_fingerprint());  // refitted
    v1::SearchImagesRequest by_image;
    by_image.set_collection("fm");
    by_image.set_image(mr);
    by_image.set_k(3);
    v1::SearchImagesResponse hits;
    ASSERT_TRUE(stub_->SearchImages(Ctx().get(), by_image, &hits).ok());
    ASSERT_GE(hits.hits_size(), 1);
    EXPECT_EQ(hits.hits(0).key(), "new");
    EXPECT_NEAR(hits.hits(0).score(), 1.0, 1e-5);
    // An old entry is still there under the new fit.
    ASSERT_TRUE(stub_->SearchImages(Ctx().get(), q, &after).ok());
    EXPECT_EQ(after.hits_size(), 10);
  }

  // The text collection too; its refit over restored + new entries equals
  // a fit over all of them at once in a fresh collection.
  ASSERT_TRUE(IndexExamples("grow", 40, 50).ok());
  v1::PublishSimilarityResponse grown;
  ASSERT_TRUE(Publish("grow", &info, &grown).ok());
  EXPECT_EQ(info.entry_count(), 50);
  // A weight-free encoder is refitted, so every entry is embedded again.
  EXPECT_EQ(grown.embedded_entries(), 50);
  EXPECT_EQ(grown.reused_entries(), 0);
  EXPECT_NE(info.encoder_fingerprint(), grow_v1);
  ASSERT_TRUE(create("grow_ref").ok());
  ASSERT_TRUE(IndexExamples("grow_ref", 0, 50).ok());
  v1::SimilarityCollectionInfo ref;
  ASSERT_TRUE(Publish("grow_ref", &ref).ok());
  EXPECT_EQ(info.encoder_fingerprint(), ref.encoder_fingerprint());
  for (int i : {3, 17, 44}) {
    const v1::SelectExamplesResponse a = select("grow", Example(i).source());
    const v1::SelectExamplesResponse b = select("grow_ref", Example(i).source());
    ASSERT_EQ(a.examples_size(), 5);
    EXPECT_EQ(a.examples(0).example().key(), absl::StrCat("ex-", i));
    EXPECT_EQ(a.prompt(), b.prompt());
    for (int j = 0; j < 5; ++j) {
      EXPECT_EQ(a.examples(j).example().key(), b.examples(j).example().key());
      EXPECT_EQ(a.examples(j).score(), b.examples(j).score());
    }
  }

  // A damaged entries file: the collection still answers, but refuses new
  // entries with the reason; nothing else is affected.
  const std::string entries =
      JoinPath(*dir_, absl::StrCat("s/grow/v", info.live_version(), ".entries"));
  std::string bytes = *ReadFileToString(entries);
  bytes[bytes.size() / 2] ^= 0x40;
  ASSERT_TRUE(WriteFileAtomically(entries, bytes).ok());
  // The only live version's entries file is read; one of a version that
  // never went live (a Publish that failed after writing it) is removed.
  const std::string stale = JoinPath(*dir_, "s/grow/v99.entries");
  ASSERT_TRUE(WriteFileAtomically(stale, "stale").ok());
  similarity_->Stop(SIGKILL);
  StartSimilarity();
  EXPECT_FALSE(PathExists(stale));
  EXPECT_TRUE(PathExists(entries));
  EXPECT_EQ(select("grow", Example(3).source()).examples(0).example().key(), "ex-3");
  const grpc::Status refused = IndexExamples("grow", 50, 51);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "damaged entries file"))
      << refused.error_message();
  EXPECT_EQ(Describe("grow").staged_count(), 0);
  EXPECT_TRUE(IndexExamples("grow_ref", 50, 51).ok());
}

// A BERT collection through the endpoint: model/encoders' seeded stand-in
// (a small config.json and vocab.txt, no weights), mean pooling.
TEST_F(SimilarityE2eTest, F_BertCollectionIndexQueryAndWrongEncoder) {
  const std::string model = JoinPath(*dir_, "bert_standin");
  ASSERT_TRUE(CreateDirectories(model).ok());
  std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\nand\nof\nla\n";
  for (const char* w : {"light", "water", "earth", "night", "day", "seed", "tree", "fruit", "sea",
                        "fish", "bird", "beast"}) {
    absl::StrAppend(&vocab, w, "\n");
  }
  for (int i = 0; i < 60; ++i) absl::StrAppend(&vocab, i, "\n");
  ASSERT_TRUE(WriteFileAtomically(JoinPath(model, "vocab.txt"), vocab).ok());
  ASSERT_TRUE(WriteFileAtomically(JoinPath(model, "config.json"),
                                  R"({"model_type": "bert", "vocab_size": 100, "hidden_size": 32,
                                      "num_hidden_layers": 2, "num_attention_heads": 4,
                                      "intermediate_size": 64, "max_position_embeddings": 32})")
                  .ok());
  v1::SimilarityCollectionConfig config;
  config.set_name("bert_ex");
  config.mutable_encoder()->mutable_bert()->set_model_dir(model);
  config.mutable_encoder()->mutable_bert()->set_pooling(v1::POOLING_MEAN);
  config.mutable_encoder()->mutable_bert()->set_max_length(32);
  // A BERT encoder on an image collection is refused, and creates nothing.
  config.set_kind(v1::SIMILARITY_IMAGE_CASES);
  v1::SimilarityCollectionInfo created;
  grpc::Status s = Create(config);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "config.encoder.bert")) << s.error_message();
  config.set_kind(v1::SIMILARITY_TRANSLATION_EXAMPLES);
  s = Create(config, &created);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const std::string fingerprint = created.encoder_fingerprint();
  EXPECT_TRUE(absl::StartsWith(fingerprint, "bert/bert-standin-2x32 mean l2 weights="))
      << fingerprint;
  EXPECT_EQ(created.dimension(), 32);

  ASSERT_TRUE(IndexExamples("bert_ex", 0, 30).ok());
  v1::SimilarityCollectionInfo published;
  ASSERT_TRUE(Publish("bert_ex", &published).ok());
  EXPECT_EQ(published.entry_count(), 30);
  EXPECT_EQ(published.encoder_fingerprint(), fingerprint);  // fixed: no refit

  v1::SelectExamplesRequest q;
  q.set_collection("bert_ex");
  q.set_k(4);
  q.set_pair("en-es");
  q.set_encoder_fingerprint(fingerprint);
  for (int i : {2, 11, 29}) {
    q.set_source(Example(i).source());
    v1::SelectExamplesResponse out;
    s = stub_->SelectExamples(Ctx().get(), q, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(out.examples_size(), 4);
    // The indexed sentence itself is the nearest, at cosine 1.
    EXPECT_EQ(out.examples(0).example().key(), absl::StrCat("ex-", i));
    EXPECT_NEAR(out.examples(0).score(), 1.0, 1e-5);
    for (int j = 1; j < 4; ++j) EXPECT_LE(out.examples(j).score(), out.examples(j - 1).score());
    EXPECT_EQ(out.encoder_fingerprint(), fingerprint);
    EXPECT_TRUE(absl::StrContains(out.prompt(), Example(i).target())) << out.prompt();
  }
  // Another encoder's fingerprint (the hashed-text default's) is refused,
  // naming both.
  v1::DescribeSimilarityCollectionRequest d;
  d.set_collection("verses");
  v1::DescribeSimilarityCollectionResponse verses;
  if (stub_->DescribeCollection(Ctx().get(), d, &verses).ok()) {
    q.set_encoder_fingerprint(verses.info().encoder_fingerprint());
  } else {
    q.set_encoder_fingerprint("hashed_text/v1 dim=512");
  }
  v1::SelectExamplesResponse out;
  s = stub_->SelectExamples(Ctx().get(), q, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), fingerprint)) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "hashed_text/v1")) << s.error_message();
  EXPECT_EQ(Describe("bert_ex").entry_count(), 30);
}

// A TorchScript text module (made at test time by
// server/similarity/testdata/make_encoder_modules.py) through the endpoint,
// mean pooling, and again after a kill -9 and restart.
TEST_F(SimilarityE2eTest, G_TorchScriptCollectionSurvivesARestart) {
  absl::StatusOr<std::string> made = EncoderModules("modules");
  if (absl::IsNotFound(made.status())) GTEST_SKIP() << made.status().message();
  ASSERT_TRUE(made.ok()) << made.status();
  const std::string mods = *made;
  v1::SimilarityCollectionConfig config;
  config.set_name("ts_ex");
  config.set_kind(v1::SIMILARITY_TRANSLATION_EXAMPLES);
  v1::TorchScriptEncoder* ts = config.mutable_encoder()->mutable_torchscript();
  ts->set_path(JoinPath(mods, "ts_text.pt"));
  ts->set_vocab_path(JoinPath(mods, "vocab.txt"));
  ts->set_pooling(v1::POOLING_MEAN);
  ts->set_dimension(7);  // the module returns 6
  grpc::Status s = Create(config);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "dimension: declared 7")) << s.error_message();
  ts->set_dimension(6);
  v1::SimilarityCollectionInfo created;
  s = Create(config, &created);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(absl::StartsWith(created.encoder_fingerprint(),
                               "torchscript/torchscript-ts_text.pt mean l2 weights="))
      << created.encoder_fingerprint();
  std::vector<v1::TranslationExample> examples = ShortExamples();
  ASSERT_TRUE(Index("ts_ex", examples).ok());
  ASSERT_TRUE(Publish("ts_ex").ok());
  auto select_in = [](const std::string& collection, const std::string& source, int k) {
    v1::SelectExamplesRequest r;
    r.set_collection(collection);
    r.set_source(source);
    r.set_k(k);
    r.set_pair("en-es");
    v1::SelectExamplesResponse out;
    const grpc::Status st = stub_->SelectExamples(Ctx().get(), r, &out);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return out;
  };
  auto select = [&](const std::string& source) { return select_in("ts_ex", source, 3); };
  const v1::SelectExamplesResponse before = select("b b c");
  ASSERT_EQ(before.examples_size(), 3);
  EXPECT_EQ(before.examples(0).example().key(), "ex-2");
  EXPECT_NEAR(before.examples(0).score(), 1.0, 1e-5);
  similarity_->Stop(SIGKILL);
  StartSimilarity();
  const v1::SelectExamplesResponse after = select("b b c");
  EXPECT_EQ(after.DebugString(), before.DebugString());
  // The restored collection takes more entries through the same module.
  v1::TranslationExample more = Example(6);
  more.set_source("d d d");
  ASSERT_TRUE(Index("ts_ex", {more}).ok());
  v1::SimilarityCollectionInfo info;
  v1::PublishSimilarityResponse published;
  ASSERT_TRUE(Publish("ts_ex", &info, &published).ok());
  EXPECT_EQ(info.entry_count(), 7);
  EXPECT_EQ(info.encoder_fingerprint(), created.encoder_fingerprint());
  EXPECT_EQ(select("d d d").examples(0).example().key(), "ex-6");
  // A fixed encoder: only the new entry went through the module; the six
  // restored ones kept their vectors in the sidecar.
  EXPECT_EQ(published.embedded_entries(), 1);
  EXPECT_EQ(published.reused_entries(), 6);
  // The answers equal those of a collection built from all seven at once.
  v1::SimilarityCollectionConfig ref_config = config;
  ref_config.set_name("ts_ref");
  ASSERT_TRUE(Create(ref_config).ok());
  examples.push_back(more);
  ASSERT_TRUE(Index("ts_ref", examples).ok());
  ASSERT_TRUE(Publish("ts_ref", nullptr, &published).ok());
  EXPECT_EQ(published.embedded_entries(), 7);
  for (const char* source : {"b b c", "d d d", "a"}) {
    const v1::SelectExamplesResponse a = select_in("ts_ex", source, 7);
    const v1::SelectExamplesResponse b = select_in("ts_ref", source, 7);
    ASSERT_EQ(a.examples_size(), 7) << source;
    ASSERT_EQ(b.examples_size(), 7) << source;
    EXPECT_EQ(a.prompt(), b.prompt()) << source;
    for (int j = 0; j < 7; ++j) {
      EXPECT_EQ(a.examples(j).example().key(), b.examples(j).example().key()) << source;
      EXPECT_NEAR(a.examples(j).score(), b.examples(j).score(), 1e-6) << source;
    }
  }

  // The sidecar's source collection rolled back behind this service's back
  // (to version 1: six entries) stages fewer entries than are published
  // here: the next Publish embeds and upserts every entry again, and ex-6
  // is back.
  const std::string rollback_log = JoinPath(*dir_, "recctl_rollback_g.log");
  ASSERT_EQ(RunToEnd({Runfile("clients/recctl/recctl"),
                      absl::StrCat("--retrieval=127.0.0.1:", retrieval_->port), "collections",
                      "rollback", "--collection=sim.ts_ex.src", "--version=1"},
                     rollback_log),
            0)
      << Tail(rollback_log);
  v1::TranslationExample last = Example(7);
  last.set_source("c c a");
  ASSERT_TRUE(Index("ts_ex", {last}).ok());
  ASSERT_TRUE(Publish("ts_ex", &info, &published).ok());
  EXPECT_EQ(info.entry_count(), 8);
  EXPECT_EQ(published.embedded_entries(), 8);
  EXPECT_EQ(published.reused_entries(), 0);
  EXPECT_EQ(select("d d d").examples(0).example().key(), "ex-6");
  EXPECT_EQ(select("c c a").examples(0).example().key(), "ex-7");
}

// Acknowledged, unpublished batches survive a kill -9 (the staging log,
// server/similarity/staging_log.h), are published once, and a damaged
// log stops Index and Publish with its file and offset while queries answer.
TEST_F(SimilarityE2eTest, H_StagedBatchesSurviveAKillAndDamageIsRefused) {
  v1::SimilarityCollectionConfig config;
  config.set_name("durable");
  config.set_kind(v1::SIMILARITY_TRANSLATION_EXAMPLES);
  ASSERT_TRUE(Create(config).ok());
  auto select = [](const std::string& source) {
    v1::SelectExamplesRequest r;
    r.set_collection("durable");
    r.set_source(source);
    r.set_k(3);
    r.set_pair("en-es");
    v1::SelectExamplesResponse out;
    const grpc::Status st = stub_->SelectExamples(Ctx().get(), r, &out);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return out;
  };
  // Two acknowledged batches; the second restages ex-3 with a new target.
  ASSERT_TRUE(IndexExamples("durable", 0, 8).ok());
  v1::TranslationExample again = Example(3);
  again.set_target("la tierra 3, otra vez");
  std::vector<v1::TranslationExample> second = {again};
  for (int i = 8; i < 12; ++i) second.push_back(Example(i));
  ASSERT_TRUE(Index("durable", second).ok());
  EXPECT_EQ(Describe("durable").staged_count(), 12);
  similarity_->Stop(SIGKILL);  // before any Publish
  StartSimilarity();
  EXPECT_EQ(Describe("durable").staged_count(), 12);
  v1::SimilarityCollectionInfo info;
  grpc::Status s = Publish("durable", &info);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(info.entry_count(), 12);
  EXPECT_EQ(info.staged_count(), 0);
  for (int i : {0, 5, 11}) {
    const v1::SelectExamplesResponse hits = select(Example(i).source());
    ASSERT_GE(hits.examples_size(), 1);
    EXPECT_EQ(hits.examples(0).example().key(), absl::StrCat("ex-", i));
  }
  EXPECT_EQ(select(Example(3).source()).examples(0).example().target(), "la tierra 3, otra vez");

  // A batch acknowledged right after the Publish survives a kill -9 (it
  // goes to the log the Publish started, not to the one it covered), and
  // the published batches are not staged again.
  ASSERT_TRUE(IndexExamples("durable", 12, 14).ok());
  similarity_->Stop(SIGKILL);
  StartSimilarity();
  EXPECT_EQ(Describe("durable").staged_count(), 2);
  ASSERT_TRUE(Publish("durable", &info).ok());
  EXPECT_EQ(info.entry_count(), 14);
  similarity_->Stop(SIGKILL);
  StartSimilarity();
  EXPECT_EQ(Describe("durable").staged_count(), 0);

  // A byte flipped in the middle of the log (valid records after it).
  ASSERT_TRUE(IndexExamples("durable", 14, 16).ok());
  ASSERT_TRUE(IndexExamples("durable", 16, 18).ok());
  ASSERT_TRUE(IndexExamples("durable", 18, 20).ok());
  similarity_->Stop(SIGKILL);
  const std::string log =
      JoinPath(*dir_, absl::StrCat("s/durable/staged-", info.live_version(), ".log"));
  absl::StatusOr<std::string> read = ReadFileToString(log);
  ASSERT_TRUE(read.ok()) << read.status();
  std::string bytes = *read;
  bytes[bytes.size() / 2] ^= 0x40;
  ASSERT_TRUE(WriteFileAtomically(log, bytes).ok());
  StartSimilarity();
  EXPECT_EQ(select(Example(13).source()).examples(0).example().key(), "ex-13");
  s = IndexExamples("durable", 20, 21);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), log)) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), " at byte ")) << s.error_message();
  s = Publish("durable");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), log)) << s.error_message();
  EXPECT_EQ(*ReadFileToString(log), bytes);  // left as it is for the operator
  const v1::SimilarityCollectionInfo degraded = Describe("durable");
  EXPECT_EQ(degraded.live_version(), info.live_version());
  EXPECT_EQ(degraded.state(), v1::SIMILARITY_COLLECTION_DEGRADED);
  EXPECT_TRUE(absl::StrContains(degraded.error(), log)) << degraded.error();
  EXPECT_TRUE(absl::StrContains(degraded.error(), " at byte ")) << degraded.error();
}

// A TorchScript collection whose module file changed while the server was
// down is restored FAILED with the reason; the server starts and the
// weight-free collection answers as before; Drop and recreate work.
TEST_F(SimilarityE2eTest, I_ChangedModuleFailsOneCollectionNotTheServer) {
  absl::StatusOr<std::string> made = EncoderModules("modules_i");
  if (absl::IsNotFound(made.status())) GTEST_SKIP() << made.status().message();
  ASSERT_TRUE(made.ok()) << made.status();
  const std::string mods = *made;
  const std::string module = JoinPath(mods, "ts_text.pt");
  v1::SimilarityCollectionConfig ts_config;
  ts_config.set_name("ts_fail");
  ts_config.set_kind(v1::SIMILARITY_TRANSLATION_EXAMPLES);
  v1::TorchScriptEncoder* ts = ts_config.mutable_encoder()->mutable_torchscript();
  ts->set_path(module);
  ts->set_vocab_path(JoinPath(mods, "vocab.txt"));
  ts->set_pooling(v1::POOLING_MEAN);
  ts->set_dimension(6);
  v1::SimilarityCollectionInfo created;
  ASSERT_TRUE(Create(ts_config, &created).ok());
  EXPECT_EQ(created.state(), v1::SIMILARITY_COLLECTION_OK);
  std::vector<v1::TranslationExample> examples = ShortExamples();
  ASSERT_TRUE(Index("ts_fail", examples).ok());
  ASSERT_TRUE(Publish("ts_fail").ok());
  v1::SimilarityCollectionConfig wf_config;
  wf_config.set_name("wf_ok");
  wf_config.set_kind(v1::SIMILARITY_TRANSLATION_EXAMPLES);
  ASSERT_TRUE(Create(wf_config).ok());
  ASSERT_TRUE(IndexExamples("wf_ok", 0, 30).ok());
  ASSERT_TRUE(Publish("wf_ok").ok());
  auto select = [](const std::string& name, const std::string& source,
                   v1::SelectExamplesResponse* out) {
    v1::SelectExamplesRequest r;
    r.set_collection(name);
    r.set_source(source);
    r.set_k(3);
    r.set_pair("en-es");
    return stub_->SelectExamples(Ctx().get(), r, out);
  };
  v1::SelectExamplesResponse wf_before, wf_after, ts_out;
  ASSERT_TRUE(select("wf_ok", Example(7).source(), &wf_before).ok());
  ASSERT_TRUE(select("ts_fail", "b b c", &ts_out).ok());

  similarity_->Stop(SIGKILL);
  // New weights in the same file: a loadable module whose CRC differs.
  const std::string rewrite = JoinPath(*dir_, "rewrite_i.py");
  ASSERT_TRUE(WriteFileAtomically(rewrite,
                                  "import sys, torch\n"
                                  "m = torch.jit.load(sys.argv[1])\n"
                                  "with torch.no_grad():\n"
                                  "    for p in m.parameters():\n"
                                  "        p.add_(0.25)\n"
                                  "m.save(sys.argv[1])\n")
                  .ok());
  const std::string old_bytes = *ReadFileToString(module);
  ASSERT_EQ(RunToEnd({"/usr/bin/python3", rewrite, module}, JoinPath(*dir_, "rewrite_i.log")), 0)
      << Tail(JoinPath(*dir_, "rewrite_i.log"));
  ASSERT_NE(*ReadFileToString(module), old_bytes);
  StartSimilarity();  // the server starts (it wrote its port file)
  {
    // grpc.health.v1 stays SERVING: the other collections answer.
    auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", similarity_->port), grpc::InsecureChannelCredentials()));
    grpc::health::v1::HealthCheckRequest hr;
    hr.set_service("recsys.v1.Similarity");
    grpc::health::v1::HealthCheckResponse hs;
    const grpc::Status st = health->Check(Ctx().get(), hr, &hs);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(hs.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }

  ASSERT_TRUE(select("wf_ok", Example(7).source(), &wf_after).ok());
  EXPECT_EQ(wf_after.DebugString(), wf_before.DebugString());
  EXPECT_EQ(Describe("wf_ok").state(), v1::SIMILARITY_COLLECTION_OK);
  const v1::SimilarityCollectionInfo failed = Describe("ts_fail");
  EXPECT_EQ(failed.state(), v1::SIMILARITY_COLLECTION_FAILED);
  EXPECT_TRUE(absl::StrContains(failed.error(), "fingerprint")) << failed.error();
  EXPECT_TRUE(absl::StrContains(failed.error(), created.encoder_fingerprint())) << failed.error();
  EXPECT_EQ(failed.config().name(), "ts_fail");
  v1::ListSimilarityCollectionsResponse listed;
  ASSERT_TRUE(stub_->ListCollections(Ctx().get(), {}, &listed).ok());
  std::map<std::string, v1::SimilarityCollectionInfo> by_name;
  for (const auto& i : listed.collections()) by_name[i.config().name()] = i;
  ASSERT_TRUE(by_name.count("ts_fail"));
  EXPECT_EQ(by_name["ts_fail"].state(), v1::SIMILARITY_COLLECTION_FAILED);
  EXPECT_EQ(by_name["ts_fail"].error(), failed.error());
  EXPECT_EQ(by_name["wf_ok"].state(), v1::SIMILARITY_COLLECTION_OK);
  EXPECT_EQ(by_name["durable"].state(), v1::SIMILARITY_COLLECTION_DEGRADED);
  auto expect_failed = [&](const grpc::Status& st, const char* call) {
    const std::string why = absl::StrCat(call, ": ", st.error_message());
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << why;
    EXPECT_TRUE(absl::StrContains(st.error_message(), "'ts_fail'")) << why;
    EXPECT_TRUE(absl::StrContains(st.error_message(), "fingerprint")) << why;
  };
  expect_failed(select("ts_fail", "b b c", &ts_out), "SelectExamples");
  expect_failed(IndexExamples("ts_fail", 40, 41), "IndexExamples");
  expect_failed(Publish("ts_fail"), "Publish");
  {
    v1::SearchImagesRequest q;
    q.set_collection("ts_fail");
    q.set_key("ex-1");
    q.set_k(1);
    v1::SearchImagesResponse out;
    expect_failed(stub_->SearchImages(Ctx().get(), q, &out), "SearchImages");
  }
  EXPECT_EQ(Create(ts_config).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  // recctl's list shows the state column.
  const std::string recctl_log = JoinPath(*dir_, "recctl_list_i.log");
  ASSERT_EQ(RunToEnd({Runfile("clients/recctl/recctl"),
                      absl::StrCat("--similarity=127.0.0.1:", similarity_->port), "similarity",
                      "list"},
                     recctl_log),
            0)
      << Tail(recctl_log);
  const std::string table = *ReadFileToString(recctl_log);
  EXPECT_TRUE(absl::StrContains(table, "STATE")) << table;
  bool ts_row_failed = false, wf_row_ok = false;
  for (absl::string_view line : absl::StrSplit(table, '\n')) {
    if (absl::StartsWith(line, "ts_fail ")) ts_row_failed = absl::StrContains(line, " FAILED ");
    if (absl::StartsWith(line, "wf_ok ")) wf_row_ok = absl::StrContains(line, " ok ");
  }
  EXPECT_TRUE(ts_row_failed) << table;
  EXPECT_TRUE(absl::StrContains(table, "ts_fail: " + failed.error())) << table;
  EXPECT_TRUE(wf_row_ok) << table;

  // The operator drops it and recreates it on the new file.
  {
    v1::DropSimilarityCollectionRequest d;
    d.set_collection("ts_fail");
    v1::DropSimilarityCollectionResponse out;
    const grpc::Status st = stub_->DropCollection(Ctx().get(), d, &out);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  v1::SimilarityCollectionInfo recreated;
  grpc::Status st = Create(ts_config, &recreated);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(recreated.state(), v1::SIMILARITY_COLLECTION_OK);
  EXPECT_NE(recreated.encoder_fingerprint(), created.encoder_fingerprint());
  ASSERT_TRUE(Index("ts_fail", examples).ok());
  st = Publish("ts_fail");
  ASSERT_TRUE(st.ok()) << st.error_message();
  st = select("ts_fail", "b b c", &ts_out);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_GE(ts_out.examples_size(), 1);
  EXPECT_EQ(ts_out.encoder_fingerprint(), recreated.encoder_fingerprint());
}

}  // namespace
// Text that is not UTF-8 (a proto3 string must be): the stream ends with
// INVALID_ARGUMENT naming the message and the field, the messages before it
// stay staged and acknowledged, nothing of it or later ones is staged; a
// query with such a source is refused naming `source`.
TEST_F(SimilarityE2eTest, J_TextThatIsNotUtf8IsRefusedNamingTheField) {
  v1::SimilarityCollectionConfig config;
  config.set_name("utf8");
  config.set_kind(v1::SIMILARITY_TRANSLATION_EXAMPLES);
  ASSERT_TRUE(Create(config).ok());
  v1::IndexResponse staged;
  auto ctx = Ctx();
  auto w = stub_->IndexExamples(ctx.get(), &staged);
  v1::IndexExamplesRequest r;
  r.set_collection("utf8");
  *r.add_examples() = Example(0);
  *r.add_examples() = Example(1);
  ASSERT_TRUE(w->Write(r));
  r.clear_examples();
  *r.add_examples() = Example(2);
  v1::TranslationExample bad = Example(3);
  bad.set_source("caf\xe9 au lait");
  *r.add_examples() = bad;
  w->Write(r);  // may fail once the server has ended the stream
  r.clear_examples();
  *r.add_examples() = Example(4);
  w->Write(r);
  w->WritesDone();
  const grpc::Status s = w->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_EQ(s.error_message(),
            "message 1 of the IndexExamples stream: examples[1].source: expected valid UTF-8, "
            "got 'caf\\xe9 au lait' (staged before it: 1 messages, 2 entries; nothing of it or "
            "later messages)");
  EXPECT_EQ(Describe("utf8").staged_count(), 2);

  v1::SelectExamplesRequest q;
  q.set_collection("utf8");
  q.set_source("\xff");
  q.set_k(2);
  q.set_pair("en-es");
  v1::SelectExamplesResponse out;
  const grpc::Status qs = stub_->SelectExamples(Ctx().get(), q, &out);
  EXPECT_EQ(qs.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(qs.error_message(), "source: expected valid UTF-8, got '\\xff'");

  // The admin calls are read raw too: a collection name that is not UTF-8
  // names the field (these were UNIMPLEMENTED with no message), and the
  // collection is untouched.
  const std::string bad_name = "utf\xe9-8";
  const std::string says = ": expected valid UTF-8, got 'utf\\xe9-8'";
  {
    v1::CreateSimilarityCollectionRequest req;
    *req.mutable_config() = config;
    req.mutable_config()->set_name(bad_name);
    v1::CreateSimilarityCollectionResponse resp;
    const grpc::Status st = stub_->CreateCollection(Ctx().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(st.error_message(), "config.name" + says);
  }
  {
    v1::DescribeSimilarityCollectionRequest req;
    req.set_collection(bad_name);
    v1::DescribeSimilarityCollectionResponse resp;
    const grpc::Status st = stub_->DescribeCollection(Ctx().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(st.error_message(), "collection" + says);
  }
  {
    v1::PublishSimilarityRequest req;
    req.set_collection(bad_name);
    v1::PublishSimilarityResponse resp;
    const grpc::Status st = stub_->Publish(Ctx().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(st.error_message(), "collection" + says);
  }
  {
    v1::EvaluateRequest req;
    req.set_collection("utf8");
    req.set_label_field("p\xe9");
    v1::EvaluateResponse resp;
    const grpc::Status st = stub_->Evaluate(Ctx().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(st.error_message(), "label_field: expected valid UTF-8, got 'p\\xe9'");
  }
  {
    v1::DropSimilarityCollectionRequest req;
    req.set_collection(bad_name);
    v1::DropSimilarityCollectionResponse resp;
    const grpc::Status st = stub_->DropCollection(Ctx().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(st.error_message(), "collection" + says);
  }
  EXPECT_EQ(Describe("utf8").staged_count(), 2);
  v1::ListSimilarityCollectionsResponse listed;
  ASSERT_TRUE(
      stub_->ListCollections(Ctx().get(), v1::ListSimilarityCollectionsRequest(), &listed).ok());
  bool found = false;
  for (const auto& c : listed.collections()) found |= c.config().name() == "utf8";
  EXPECT_TRUE(found);
}

// CreateCollection, Publish and Evaluate run on threads of their own, at
// most --max_long_calls at once. With the sidecar stopped (SIGSTOP), one
// Publish holds the only slot and waits; the others are refused at once
// with RESOURCE_EXHAUSTED; after SIGCONT the held one completes.
TEST_F(SimilarityE2eTest, K_LongCallsBeyondTheLimitAreRefusedAtOnce) {
  similarity_->Stop();
  StartSimilarity({"--max_long_calls=1"});
  v1::SimilarityCollectionConfig config;
  config.set_name("slots");
  config.set_kind(v1::SIMILARITY_TRANSLATION_EXAMPLES);
  ASSERT_TRUE(Create(config).ok());
  ASSERT_TRUE(IndexExamples("slots", 0, 8).ok());
  ASSERT_EQ(kill(retrieval_->pid, SIGSTOP), 0);
  constexpr int kCalls = 3;
  std::vector<grpc::Status> status(kCalls);
  std::atomic<int> done{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back([&, i] {
      status[i] = Publish("slots");
      done.fetch_add(1);
    });
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (done.load() < kCalls - 1 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  const int refused_before_cont = done.load();
  kill(retrieval_->pid, SIGCONT);
  for (auto& t : callers) t.join();
  EXPECT_EQ(refused_before_cont, kCalls - 1);  // while the sidecar was stopped
  int ok = 0, exhausted = 0;
  for (const grpc::Status& s : status) {
    if (s.ok()) ++ok;
    if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++exhausted;
      EXPECT_TRUE(absl::StrContains(s.error_message(), "Publish: at most 1 CreateCollection"))
          << s.error_message();
    }
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(exhausted, kCalls - 1);
  EXPECT_EQ(Describe("slots").entry_count(), 8);
  similarity_->Stop();
  StartSimilarity();
}

}  // namespace recsys
