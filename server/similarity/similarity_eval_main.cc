// similarity_eval: the evaluation command of the similarity endpoint.
//
// --task=images: Fashion-MNIST through a running similarity_server: creates
// an image collection (--encoder=pixel_pca|vit), indexes --index_limit
// training images as PNG bytes with their class, publishes, and sends the
// first --query_limit test images to Evaluate (P@N micro/macro, recall of
// the approximate index against exact). Then the same figures in process:
// the collection's fitted encoder read back from --state_dir (the server's),
// the same images embedded here and searched exhaustively.
//
// --task=translation: English/Spanish verse pairs (diatheke, --range), with
// --queries held out (seeded); the rest indexed in batches and published;
// SelectExamples for every held-out verse. Checks each answer against an
// exhaustive in-process search (the exact top-k by the embedder's cosine)
// and the prompt's form, and reports mean cosine and word overlap of the
// selected examples against random ones.
//
// Prints a table; --json_out gets the figures; --dump_dir gets the vectors
// and results for an independent numpy check (testdata/similarity_check.py).
#include <faiss/IndexFlat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "grpcpp/grpcpp.h"
#include "model/encoders/image_io.h"
#include "proto/similarity.grpc.pb.h"
#include "server/similarity/collection_encoder.h"
#include "server/similarity/fashion_mnist.h"
#include "server/similarity/hashed_text_embedder.h"
#include "server/similarity/medical_image.h"
#include "server/similarity/parallel_corpus.h"
#include "server/similarity/precision_at_n.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50061", "similarity_server host:port.");
ABSL_FLAG(std::string, task, "images", "images | translation");
ABSL_FLAG(std::string, collection, "", "Collection name (default: eval_<task>_<encoder>); recreated.");
ABSL_FLAG(std::string, encoder, "pixel_pca", "images: pixel_pca | vit");
ABSL_FLAG(std::string, vit_model_dir, "", "vit: a model directory (config.json, optional weights).");
ABSL_FLAG(std::string, index_factory, "Flat", "The sidecar's FAISS index.");
ABSL_FLAG(std::string, fashion_mnist_dir, recsys::similarity::kDebianFashionMnistDir, "IDX files.");
ABSL_FLAG(int, index_limit, 60000, "images: training images indexed (first N).");
ABSL_FLAG(int, query_limit, 10000, "images: test images queried (first N).");
ABSL_FLAG(std::string, range, "Genesis 1:1-Revelation 22:21", "translation: diatheke range.");
ABSL_FLAG(int, queries, 500, "translation: held-out verses.");
ABSL_FLAG(int, k, 4, "translation: examples per query.");
ABSL_FLAG(uint64_t, seed, 7, "translation: hold-out and random-example seed.");
ABSL_FLAG(std::string, state_dir, "", "The server's --state_dir (for the in-process figures).");
ABSL_FLAG(std::string, json_out, "", "Where to write the figures as JSON.");
ABSL_FLAG(std::string, dump_dir, "", "Where to write vectors and results for the numpy check.");
ABSL_FLAG(int, batch, 2000, "Entries per Index stream message.");
ABSL_FLAG(bool, reuse, false,
          "images: keep the collection when it is live with --index_limit entries (skip indexing).");
ABSL_FLAG(int, evaluate_batch, 256, "images: the server's Evaluate batch (SimilarityStoreOptions::search_batch).");

namespace recsys {
namespace similarity {
namespace {

struct Endpoint {
  std::unique_ptr<v1::Similarity::Stub> stub;
  std::unique_ptr<grpc::ClientContext> Context(absl::Duration d = absl::Minutes(30)) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + d));
    return ctx;
  }
};

absl::Status Call(const char* what, const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  const absl::Status a = FromGrpcStatus(s);
  return absl::Status(a.code(), absl::StrCat(what, ": ", a.message()));
}

absl::Status WriteFloats(const std::string& path, const std::vector<float>& v) {
  return WriteFileAtomically(path, std::string(reinterpret_cast<const char*>(v.data()),
                                               v.size() * sizeof(float)));
}

absl::Status Recreate(Endpoint& ep, const v1::SimilarityCollectionConfig& config,
                      v1::SimilarityCollectionInfo* info) {
  {
    v1::DropSimilarityCollectionRequest drop;
    drop.set_collection(config.name());
    v1::DropSimilarityCollectionResponse r;
    const grpc::Status s = ep.stub->DropCollection(ep.Context().get(), drop, &r);
    if (!s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND) return Call("DropCollection", s);
  }
  v1::CreateSimilarityCollectionRequest create;
  *create.mutable_config() = config;
  v1::CreateSimilarityCollectionResponse r;
  RETURN_IF_ERROR(Call("CreateCollection", ep.stub->CreateCollection(ep.Context().get(), create, &r)));
  *info = r.info();
  return absl::OkStatus();
}

absl::StatusOr<v1::SimilarityCollectionInfo> PublishCollection(Endpoint& ep, const std::string& name) {
  v1::PublishSimilarityRequest req;
  req.set_collection(name);
  v1::PublishSimilarityResponse r;
  RETURN_IF_ERROR(Call("Publish", ep.stub->Publish(ep.Context().get(), req, &r)));
  return r.info();
}

absl::StatusOr<std::unique_ptr<CollectionEncoder>> InProcessEncoder(
    const v1::SimilarityCollectionInfo& info) {
  const std::string state_dir = absl::GetFlag(FLAGS_state_dir);
  if (state_dir.empty()) return absl::InvalidArgumentError("--state_dir: required for the in-process figures");
  std::string state;
  const bool weight_free = !info.config().encoder().has_vit() && !info.config().encoder().has_bert();
  if (weight_free) {
    ASSIGN_OR_RETURN(state, ReadFileToString(JoinPath(
        JoinPath(state_dir, info.config().name()), absl::StrCat("v", info.live_version(), ".state"))));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<CollectionEncoder> e,
                   RestoreCollectionEncoder(info.config().kind(), info.config().encoder(), state));
  if (e->fingerprint() != info.encoder_fingerprint()) {
    return absl::FailedPreconditionError(absl::StrCat("in-process encoder ", e->fingerprint(),
                                                      " differs from the endpoint's ",
                                                      info.encoder_fingerprint()));
  }
  return e;
}

// Exhaustive inner-product top-k (FAISS IndexFlatIP: BLAS).
void BruteForce(const std::vector<float>& index, const std::vector<float>& queries, int d, int k,
                std::vector<float>* scores, std::vector<faiss::Index::idx_t>* ids) {
  faiss::IndexFlatIP flat(d);
  flat.add(static_cast<faiss::Index::idx_t>(index.size() / d), index.data());
  const int64_t nq = static_cast<int64_t>(queries.size() / d);
  scores->resize(nq * k);
  ids->resize(nq * k);
  flat.search(nq, queries.data(), k, scores->data(), ids->data());
}

std::string Json(const PrecisionAtNReport& r) {
  std::vector<std::string> rows;
  for (size_t i = 0; i < r.ns.size(); ++i) {
    rows.push_back(absl::StrFormat("{\"n\": %d, \"micro\": %.10f, \"macro\": %.10f}", r.ns[i],
                                   r.micro[i], r.macro[i]));
  }
  return absl::StrCat("[", absl::StrJoin(rows, ", "), "]");
}

absl::Status RunImages(Endpoint& ep) {
  const std::string enc = absl::GetFlag(FLAGS_encoder);
  const std::string name = absl::GetFlag(FLAGS_collection).empty()
                               ? absl::StrCat("eval_images_", enc)
                               : absl::GetFlag(FLAGS_collection);
  absl::Time t = absl::Now();
  ASSIGN_OR_RETURN(FashionMnist fm, ReadFashionMnist(absl::GetFlag(FLAGS_fashion_mnist_dir)));
  const int64_t n_index = std::min<int64_t>(absl::GetFlag(FLAGS_index_limit), fm.train.size());
  const int64_t n_query = std::min<int64_t>(absl::GetFlag(FLAGS_query_limit), fm.test.size());
  auto png = [](const LabelledImages& set, int64_t i) {
    RgbImage rgb;
    rgb.width = set.cols;
    rgb.height = set.rows;
    const uint8_t* p = set.pixels.data() + i * set.rows * set.cols;
    for (int j = 0; j < set.rows * set.cols; ++j) rgb.pixels.insert(rgb.pixels.end(), 3, p[j]);
    return EncodePng(rgb);
  };
  std::vector<std::string> index_png(n_index), query_png(n_query);
  for (int64_t i = 0; i < n_index; ++i) { ASSIGN_OR_RETURN(index_png[i], png(fm.train, i)); }
  for (int64_t i = 0; i < n_query; ++i) { ASSIGN_OR_RETURN(query_png[i], png(fm.test, i)); }
  const double read_s = absl::ToDoubleSeconds(absl::Now() - t);

  v1::SimilarityCollectionConfig config;
  config.set_name(name);
  config.set_kind(v1::SIMILARITY_IMAGE_CASES);
  config.set_index_factory(absl::GetFlag(FLAGS_index_factory));
  if (enc == "vit") {
    config.mutable_encoder()->mutable_vit()->set_model_dir(absl::GetFlag(FLAGS_vit_model_dir));
  } else if (enc == "pixel_pca") {
    config.mutable_encoder()->mutable_pixel_pca();
  } else {
    return absl::InvalidArgumentError("--encoder: pixel_pca or vit");
  }
  v1::SimilarityCollectionInfo info;
  bool reuse = false;
  if (absl::GetFlag(FLAGS_reuse)) {
    v1::DescribeSimilarityCollectionRequest dreq;
    dreq.set_collection(name);
    v1::DescribeSimilarityCollectionResponse dres;
    reuse = ep.stub->DescribeCollection(ep.Context().get(), dreq, &dres).ok() &&
            dres.info().live_version() > 0 && dres.info().entry_count() == n_index &&
            dres.info().config().index_factory() == config.index_factory();
    if (reuse) info = dres.info();
  }
  if (!reuse) RETURN_IF_ERROR(Recreate(ep, config, &info));

  t = absl::Now();
  if (!reuse) {
    v1::IndexResponse staged;
    auto ctx = ep.Context();
    auto writer = ep.stub->IndexImages(ctx.get(), &staged);
    const int batch = absl::GetFlag(FLAGS_batch);
    for (int64_t start = 0; start < n_index; start += batch) {
      v1::IndexImagesRequest req;
      req.set_collection(name);
      for (int64_t i = start; i < std::min<int64_t>(n_index, start + batch); ++i) {
        v1::ImageCase* c = req.add_cases();
        c->set_key(absl::StrCat("train-", i));
        c->set_image(index_png[i]);
        (*c->mutable_labels())["class"] = std::string(FashionMnistClassName(fm.train.labels[i]));
      }
      if (!writer->Write(req)) break;
    }
    writer->WritesDone();
    RETURN_IF_ERROR(Call("IndexImages", writer->Finish()));
    if (staged.staged() != n_index) {
      return absl::DataLossError(absl::StrCat("staged ", staged.staged(), " of ", n_index));
    }
  }
  const double index_s = absl::ToDoubleSeconds(absl::Now() - t);
  t = absl::Now();
  if (!reuse) { ASSIGN_OR_RETURN(info, PublishCollection(ep, name)); }
  const double publish_s = absl::ToDoubleSeconds(absl::Now() - t);

  t = absl::Now();
  v1::EvaluateRequest ereq;
  ereq.set_collection(name);
  ereq.set_label_field("class");
  for (int n = 1; n <= 10; ++n) ereq.add_ns(n);
  ereq.set_compute_recall(true);
  for (int64_t i = 0; i < n_query; ++i) {
    v1::LabelledQuery* q = ereq.add_queries();
    q->set_image(query_png[i]);
    q->set_label(std::string(FashionMnistClassName(fm.test.labels[i])));
  }
  v1::EvaluateResponse eres;
  RETURN_IF_ERROR(Call("Evaluate", ep.stub->Evaluate(ep.Context().get(), ereq, &eres)));
  const double evaluate_s = absl::ToDoubleSeconds(absl::Now() - t);

  // In process: the same encoder, the same decoded images, exhaustive search.
  t = absl::Now();
  ASSIGN_OR_RETURN(std::unique_ptr<CollectionEncoder> encoder, InProcessEncoder(info));
  // In the endpoint's batches (a backbone's float results depend slightly on
  // the batch a row is computed in): Index messages, Evaluate batches.
  auto embed = [&](const std::vector<std::string>& pngs,
                   size_t batch) -> absl::StatusOr<std::vector<float>> {
    std::vector<float> rows;
    for (size_t s = 0; s < pngs.size(); s += batch) {
      std::vector<GrayImage> images;
      for (size_t i = s; i < std::min(pngs.size(), s + batch); ++i) {
        ASSIGN_OR_RETURN(MedicalImage m, DecodeMedicalImage(pngs[i]));
        images.push_back(std::move(m.image));
      }
      ASSIGN_OR_RETURN(std::vector<float> f, encoder->ImageFeaturesBatch(images));
      rows.insert(rows.end(), f.begin(), f.end());
    }
    return encoder->EmbedFeatureRows(rows, static_cast<int64_t>(pngs.size()));
  };
  ASSIGN_OR_RETURN(std::vector<float> index_vec, embed(index_png, absl::GetFlag(FLAGS_batch)));
  ASSIGN_OR_RETURN(std::vector<float> query_vec,
                   embed(query_png, absl::GetFlag(FLAGS_evaluate_batch)));
  const int d = encoder->dimension();
  std::vector<float> scores;
  std::vector<faiss::Index::idx_t> ids;
  BruteForce(index_vec, query_vec, d, 10, &scores, &ids);
  std::vector<std::string> index_labels, query_labels;
  for (int64_t i = 0; i < n_index; ++i) index_labels.emplace_back(FashionMnistClassName(fm.train.labels[i]));
  for (int64_t i = 0; i < n_query; ++i) query_labels.emplace_back(FashionMnistClassName(fm.test.labels[i]));
  std::vector<std::vector<std::string>> results(n_query);
  for (int64_t q = 0; q < n_query; ++q) {
    for (int j = 0; j < 10; ++j) results[q].push_back(index_labels[ids[q * 10 + j]]);
  }
  PrecisionAtNOptions po;
  po.ns = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  ASSIGN_OR_RETURN(PrecisionAtNReport local,
                   ComputePrecisionAtN(query_labels, results, CountLabels(index_labels), po));
  const double inprocess_s = absl::ToDoubleSeconds(absl::Now() - t);

  double max_diff = 0;
  std::printf("Fashion-MNIST through the endpoint: %lld index, %lld queries, encoder %s\n",
              static_cast<long long>(n_index), static_cast<long long>(n_query),
              info.encoder_fingerprint().c_str());
  std::printf("| N | micro P@N | macro P@N | in-process micro | in-process macro |\n|---|---|---|---|---|\n");
  for (int i = 0; i < eres.precision_size(); ++i) {
    const auto& p = eres.precision(i);
    max_diff = std::max({max_diff, std::abs(p.micro() - local.micro[i]),
                         std::abs(p.macro() - local.macro[i])});
    std::printf("| %d | %.4f | %.4f | %.4f | %.4f |\n", p.n(), p.micro(), p.macro(),
                local.micro[i], local.macro[i]);
  }
  std::printf("recall@10 of %s vs exact: %.4f; endpoint vs in-process max |diff| %.2e\n",
              config.index_factory().c_str(), eres.recall(), max_diff);
  std::printf("times (s): read+png %.1f, index %.1f, publish %.1f, evaluate %.1f, in-process %.1f\n",
              read_s, index_s, publish_s, evaluate_s, inprocess_s);

  std::vector<std::string> ep_rows;
  for (const auto& p : eres.precision()) {
    ep_rows.push_back(absl::StrFormat("{\"n\": %d, \"micro\": %.10f, \"macro\": %.10f}", p.n(),
                                      p.micro(), p.macro()));
  }
  const std::string json = absl::StrFormat(
      "{\"task\": \"images\", \"encoder\": \"%s\", \"fingerprint\": \"%s\", \"index\": %d, "
      "\"queries\": %d, \"index_factory\": \"%s\", \"endpoint\": [%s], \"in_process\": %s, "
      "\"recall\": %.10f, \"max_abs_diff\": %.3e, \"seconds\": {\"index\": %.2f, \"publish\": "
      "%.2f, \"evaluate\": %.2f}}\n",
      enc, info.encoder_fingerprint(), n_index, n_query, config.index_factory(),
      absl::StrJoin(ep_rows, ", "), Json(local), eres.recall(), max_diff, index_s, publish_s,
      evaluate_s);
  if (!absl::GetFlag(FLAGS_json_out).empty()) {
    RETURN_IF_ERROR(WriteFileAtomically(absl::GetFlag(FLAGS_json_out), json));
  }
  const std::string dump = absl::GetFlag(FLAGS_dump_dir);
  if (!dump.empty()) {
    RETURN_IF_ERROR(CreateDirectories(dump));
    RETURN_IF_ERROR(WriteFloats(JoinPath(dump, "index.f32"), index_vec));
    RETURN_IF_ERROR(WriteFloats(JoinPath(dump, "query.f32"), query_vec));
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dump, "index_labels.txt"), absl::StrJoin(index_labels, "\n")));
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dump, "query_labels.txt"), absl::StrJoin(query_labels, "\n")));
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dump, "meta.json"),
                                        absl::StrFormat("{\"d\": %d}\n", d)));
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dump, "endpoint.json"), json));
  }
  if (max_diff > 1e-6) return absl::InternalError("endpoint and in-process figures differ");
  return absl::OkStatus();
}

std::set<std::string> WordSet(const std::string& s) {
  std::vector<std::string> w = NormalizedWords(s);
  return std::set<std::string>(w.begin(), w.end());
}

double Jaccard(const std::set<std::string>& a, const std::set<std::string>& b) {
  if (a.empty() && b.empty()) return 0;
  int inter = 0;
  for (const std::string& x : a) inter += b.count(x);
  return static_cast<double>(inter) / static_cast<double>(a.size() + b.size() - inter);
}

double Dot(const float* a, const float* b, int d) {
  double s = 0;
  for (int i = 0; i < d; ++i) s += double{a[i]} * b[i];
  return s;
}

absl::Status RunTranslation(Endpoint& ep) {
  const std::string name = absl::GetFlag(FLAGS_collection).empty() ? "eval_translation"
                                                                   : absl::GetFlag(FLAGS_collection);
  DiathekeCorpusOptions co;
  co.range = absl::GetFlag(FLAGS_range);
  absl::Time t = absl::Now();
  ASSIGN_OR_RETURN(std::vector<TranslationPair> pairs, ReadDiathekeParallelCorpus(co));
  const double read_s = absl::ToDoubleSeconds(absl::Now() - t);
  const int n_q = std::min<int>(absl::GetFlag(FLAGS_queries), static_cast<int>(pairs.size()) / 2);
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  std::vector<int> order(pairs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<int> held(order.begin(), order.begin() + n_q);
  std::vector<int> pool(order.begin() + n_q, order.end());
  std::sort(pool.begin(), pool.end());

  v1::SimilarityCollectionConfig config;
  config.set_name(name);
  config.set_kind(v1::SIMILARITY_TRANSLATION_EXAMPLES);
  config.mutable_encoder()->mutable_hashed_text();
  v1::SimilarityCollectionInfo info;
  RETURN_IF_ERROR(Recreate(ep, config, &info));
  t = absl::Now();
  {
    v1::IndexResponse staged;
    auto ctx = ep.Context();
    auto writer = ep.stub->IndexExamples(ctx.get(), &staged);
    const int batch = absl::GetFlag(FLAGS_batch);
    for (size_t start = 0; start < pool.size(); start += batch) {
      v1::IndexExamplesRequest req;
      req.set_collection(name);
      for (size_t i = start; i < std::min(pool.size(), start + batch); ++i) {
        const TranslationPair& p = pairs[pool[i]];
        v1::TranslationExample* e = req.add_examples();
        e->set_key(p.key);
        e->set_source(p.source);
        e->set_target(p.target);
        e->set_pair(p.pair);
      }
      if (!writer->Write(req)) break;
    }
    writer->WritesDone();
    RETURN_IF_ERROR(Call("IndexExamples", writer->Finish()));
  }
  const double index_s = absl::ToDoubleSeconds(absl::Now() - t);
  t = absl::Now();
  ASSIGN_OR_RETURN(info, PublishCollection(ep, name));
  const double publish_s = absl::ToDoubleSeconds(absl::Now() - t);

  const int k = absl::GetFlag(FLAGS_k);
  t = absl::Now();
  std::vector<v1::SelectExamplesResponse> answers(n_q);
  int malformed = 0;
  for (int q = 0; q < n_q; ++q) {
    v1::SelectExamplesRequest req;
    req.set_collection(name);
    req.set_source(pairs[held[q]].source);
    req.set_k(k);
    req.set_pair("en-es");
    req.set_encoder_fingerprint(info.encoder_fingerprint());
    RETURN_IF_ERROR(Call("SelectExamples", ep.stub->SelectExamples(ep.Context().get(), req, &answers[q])));
    const v1::SelectExamplesResponse& a = answers[q];
    // Well-formed: every example in the prompt, most similar last, the query at the end.
    bool ok = a.examples_size() == k &&
              absl::EndsWith(a.prompt(), absl::StrCat("English: ", req.source(), "\nSpanish:"));
    size_t last = 0;
    for (int j = a.examples_size() - 1; ok && j >= 0; --j) {
      const std::string block = absl::StrCat("English: ", a.examples(j).example().source(),
                                             "\nSpanish: ", a.examples(j).example().target(), "\n\n");
      const size_t at = a.prompt().find(block, last);
      ok = at != std::string::npos;
      last = at + block.size();
    }
    malformed += !ok;
  }
  const double select_s = absl::ToDoubleSeconds(absl::Now() - t);

  ASSIGN_OR_RETURN(std::unique_ptr<CollectionEncoder> encoder, InProcessEncoder(info));
  const int d = encoder->dimension();
  std::vector<float> index_vec, query_vec;
  std::map<std::string, int> row_of;
  for (size_t i = 0; i < pool.size(); ++i) {
    ASSIGN_OR_RETURN(std::vector<float> v, encoder->EmbedText(pairs[pool[i]].source));
    index_vec.insert(index_vec.end(), v.begin(), v.end());
    row_of[pairs[pool[i]].key] = static_cast<int>(i);
  }
  for (int q = 0; q < n_q; ++q) {
    ASSIGN_OR_RETURN(std::vector<float> v, encoder->EmbedText(pairs[held[q]].source));
    query_vec.insert(query_vec.end(), v.begin(), v.end());
  }
  std::vector<float> scores;
  std::vector<faiss::Index::idx_t> ids;
  BruteForce(index_vec, query_vec, d, k, &scores, &ids);
  int exact = 0;
  double max_score_diff = 0, sel_cos = 0, rnd_cos = 0, sel_jac = 0, rnd_jac = 0;
  std::uniform_int_distribution<int> pick(0, static_cast<int>(pool.size()) - 1);
  std::string selected_rows;
  for (int q = 0; q < n_q; ++q) {
    const v1::SelectExamplesResponse& a = answers[q];
    bool same = a.examples_size() == k;
    const std::set<std::string> qw = WordSet(pairs[held[q]].source);
    for (int j = 0; j < a.examples_size(); ++j) {
      const int row = row_of.at(a.examples(j).example().key());
      const double cos = Dot(query_vec.data() + q * d, index_vec.data() + row * d, d);
      max_score_diff = std::max({max_score_diff, std::abs(cos - a.examples(j).score()),
                                 std::abs(double{scores[q * k + j]} - a.examples(j).score())});
      // The same key, or a tie at the same score.
      same = same && (ids[q * k + j] == row || std::abs(scores[q * k + j] - cos) < 1e-6);
      sel_cos += cos;
      sel_jac += Jaccard(qw, WordSet(a.examples(j).example().source()));
      absl::StrAppend(&selected_rows, j ? " " : "", row);
      const int r = pick(rng);
      rnd_cos += Dot(query_vec.data() + q * d, index_vec.data() + r * d, d);
      rnd_jac += Jaccard(qw, WordSet(pairs[pool[r]].source));
    }
    absl::StrAppend(&selected_rows, "\n");
    exact += same;
  }
  const double m = static_cast<double>(n_q) * k;
  std::printf("Translation examples through the endpoint: %zu pool pairs, %d held-out queries, k=%d\n"
              "encoder %s\n", pool.size(), n_q, k, info.encoder_fingerprint().c_str());
  std::printf("exact top-k (vs in-process brute force): %d/%d; max |score diff| %.2e; malformed prompts %d\n",
              exact, n_q, max_score_diff, malformed);
  std::printf("| examples | mean cosine to query | mean word Jaccard |\n|---|---|---|\n"
              "| selected | %.4f | %.4f |\n| random | %.4f | %.4f |\n",
              sel_cos / m, sel_jac / m, rnd_cos / m, rnd_jac / m);
  std::printf("times (s): read %.1f, index %.1f, publish %.1f, %d SelectExamples %.1f\n", read_s,
              index_s, publish_s, n_q, select_s);
  const std::string json = absl::StrFormat(
      "{\"task\": \"translation\", \"fingerprint\": \"%s\", \"pool\": %d, \"queries\": %d, \"k\": %d, "
      "\"exact_top_k\": %d, \"max_abs_score_diff\": %.3e, \"malformed_prompts\": %d, "
      "\"selected\": {\"mean_cosine\": %.6f, \"mean_jaccard\": %.6f}, "
      "\"random\": {\"mean_cosine\": %.6f, \"mean_jaccard\": %.6f}, \"seconds\": {\"index\": %.2f, "
      "\"publish\": %.2f, \"select\": %.2f}}\n",
      info.encoder_fingerprint(), pool.size(), n_q, k, exact, max_score_diff, malformed, sel_cos / m,
      sel_jac / m, rnd_cos / m, rnd_jac / m, index_s, publish_s, select_s);
  if (!absl::GetFlag(FLAGS_json_out).empty()) {
    RETURN_IF_ERROR(WriteFileAtomically(absl::GetFlag(FLAGS_json_out), json));
  }
  const std::string dump = absl::GetFlag(FLAGS_dump_dir);
  if (!dump.empty()) {
    RETURN_IF_ERROR(CreateDirectories(dump));
    RETURN_IF_ERROR(WriteFloats(JoinPath(dump, "index.f32"), index_vec));
    RETURN_IF_ERROR(WriteFloats(JoinPath(dump, "query.f32"), query_vec));
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dump, "selected_rows.txt"), selected_rows));
    std::string sel_scores;
    for (const auto& a : answers) {
      for (int j = 0; j < a.examples_size(); ++j) absl::StrAppend(&sel_scores, j ? " " : "", absl::StrFormat("%.9g", a.examples(j).score()));
      absl::StrAppend(&sel_scores, "\n");
    }
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dump, "selected_scores.txt"), sel_scores));
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dump, "meta.json"),
                                        absl::StrFormat("{\"d\": %d, \"k\": %d}\n", d, k)));
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dump, "endpoint.json"), json));
  }
  if (exact != n_q || malformed != 0) return absl::InternalError("selected examples are not the exact top-k, or a prompt is malformed");
  return absl::OkStatus();
}

}  // namespace
}  // namespace similarity
}  // namespace recsys

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  recsys::similarity::Endpoint ep;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  ep.stub = recsys::v1::Similarity::NewStub(grpc::CreateCustomChannel(
      absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials(), args));
  const std::string task = absl::GetFlag(FLAGS_task);
  absl::Status s = task == "images"        ? recsys::similarity::RunImages(ep)
                   : task == "translation" ? recsys::similarity::RunTranslation(ep)
                                           : absl::InvalidArgumentError("--task: images or translation");
  if (!s.ok()) {
    LOG(ERROR) << s;
    return 1;
  }
  return 0;
}
