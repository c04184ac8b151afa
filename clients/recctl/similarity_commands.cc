// recctl similarity ...: the similarity endpoint (translation examples and
// image cases).
#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "clients/recctl/recctl.h"
#include "common/status_macros.h"
#include "common/user_input.h"
#include "proto/similarity.grpc.pb.h"

namespace recsys {
namespace recctl {
namespace {

namespace pb = ::recsys::v1;

std::unique_ptr<pb::Similarity::Stub> Stub(Context& c) {
  return pb::Similarity::NewStub(c.Channel("similarity"));
}

absl::StatusOr<std::string> ReadFile(const std::string& flag, const std::string& path) {
  ASSIGN_OR_RETURN(std::ifstream in, OpenInputFile(flag, path, std::ios::in | std::ios::binary));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Lines of a TSV file, '\r' dropped, blank lines skipped.
absl::StatusOr<std::vector<std::vector<std::string>>> ReadTsv(const std::string& flag,
                                                              const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(flag, path));
  std::vector<std::vector<std::string>> rows;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) rows.push_back(absl::StrSplit(line, '\t'));
  }
  return rows;
}

std::string Labels(const google::protobuf::Map<std::string, std::string>& m) {
  std::vector<std::string> kv;
  for (const auto& [k, v] : m) kv.push_back(absl::StrCat(k, "=", v));
  std::sort(kv.begin(), kv.end());
  return absl::StrJoin(kv, ";");
}

const char* StateName(pb::SimilarityCollectionState s) {
  switch (s) {
    case pb::SIMILARITY_COLLECTION_OK: return "ok";
    case pb::SIMILARITY_COLLECTION_DEGRADED: return "DEGRADED";
    case pb::SIMILARITY_COLLECTION_FAILED: return "FAILED";
    default: return "?";
  }
}

void PrintInfo(Context& c, const pb::SimilarityCollectionInfo& i) {
  c.out() << "collection " << i.config().name() << " ("
          << (i.config().kind() == pb::SIMILARITY_IMAGE_CASES ? "image cases" : "translation examples")
          << "): live version " << i.live_version() << ", " << i.entry_count() << " entries, "
          << i.staged_count() << " staged, dimension " << i.dimension() << "\n"
          << "encoder " << i.encoder_fingerprint() << "\n"
          << "state " << StateName(i.state()) << (i.error().empty() ? "" : ": ") << i.error()
          << "\n";
}

const FlagSpec kCollection{"collection", "", "collection name"};

Command Create() {
  return {"similarity", "create", "a collection with an attached encoder",
          "--collection=NAME --kind=text|image [--encoder=default|bert|vit --model_dir=D] "
          "[--encoder=torchscript --module=M.pt --dimension=N [--vocab=V] [--image_size=S]] "
          "[--pooling=cls|mean]",
          {kCollection, {"kind", "text", "text (translation examples) | image (image cases)"},
           {"encoder", "default", "default (weight-free) | bert | vit | torchscript"},
           {"model_dir", "", "bert / vit: config.json, vocab.txt, model.safetensors"},
           {"module", "", "torchscript: the module file (on the server's file system)"},
           {"vocab", "", "torchscript text modules: WordPiece vocab.txt"},
           {"dimension", "0", "torchscript: the module's output width"},
           {"image_size", "0", "torchscript image modules: input side (0: 224)"},
           {"pooling", "cls", "bert / torchscript text: cls | mean"},
           {"index_factory", "Flat", "the sidecar's FAISS index"}},
          [](Context& c) -> absl::Status {
            pb::CreateSimilarityCollectionRequest req;
            pb::SimilarityCollectionConfig* cfg = req.mutable_config();
            ASSIGN_OR_RETURN(*cfg->mutable_name(), c.args().Required("collection"));
            const std::string kind = c.args().Get("kind"), enc = c.args().Get("encoder");
            if (kind != "text" && kind != "image") {
              return absl::InvalidArgumentError(absl::StrCat("--kind: expected text or image, got ", QuoteUserInput(kind)));
            }
            cfg->set_kind(kind == "text" ? pb::SIMILARITY_TRANSLATION_EXAMPLES : pb::SIMILARITY_IMAGE_CASES);
            if (enc == "default") {
              if (kind == "text") cfg->mutable_encoder()->mutable_hashed_text();
              if (kind == "image") cfg->mutable_encoder()->mutable_pixel_pca();
            } else if (enc == "bert") {
              cfg->mutable_encoder()->mutable_bert()->set_model_dir(c.args().Get("model_dir"));
            } else if (enc == "vit") {
              cfg->mutable_encoder()->mutable_vit()->set_model_dir(c.args().Get("model_dir"));
            } else if (enc == "torchscript") {
              pb::TorchScriptEncoder* ts = cfg->mutable_encoder()->mutable_torchscript();
              ASSIGN_OR_RETURN(*ts->mutable_path(), c.args().Required("module"));
              ts->set_vocab_path(c.args().Get("vocab"));
              ASSIGN_OR_RETURN(int32_t dimension, c.args().GetInt32("dimension"));
              ASSIGN_OR_RETURN(int32_t side, c.args().GetInt32("image_size"));
              ts->set_dimension(dimension);
              ts->set_image_size(side);
            } else {
              return absl::InvalidArgumentError(absl::StrCat(
                  "--encoder: expected default, bert, vit or torchscript, got ", QuoteUserInput(enc)));
            }
            const std::string pooling = c.args().Get("pooling");
            if (pooling != "cls" && pooling != "mean") {
              return absl::InvalidArgumentError(absl::StrCat("--pooling: expected cls or mean, got ",
                                                             QuoteUserInput(pooling)));
            }
            const pb::Pooling p = pooling == "mean" ? pb::POOLING_MEAN : pb::POOLING_CLS;
            if (enc == "bert") cfg->mutable_encoder()->mutable_bert()->set_pooling(p);
            if (enc == "torchscript") cfg->mutable_encoder()->mutable_torchscript()->set_pooling(p);
            if (p == pb::POOLING_MEAN && enc != "bert" && enc != "torchscript") {
              return absl::InvalidArgumentError("--pooling=mean: for --encoder=bert or torchscript");
            }
            cfg->set_index_factory(c.args().Get("index_factory"));
            pb::CreateSimilarityCollectionResponse resp;
            grpc::Status s = Stub(c)->CreateCollection(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "create");
            if (c.json()) return PrintedJson(c, resp);
            PrintInfo(c, resp.info());
            return absl::OkStatus();
          }};
}

Command List() {
  return {"similarity", "list", "the similarity collections", "", {},
          [](Context& c) -> absl::Status {
            pb::ListSimilarityCollectionsResponse resp;
            grpc::Status s = Stub(c)->ListCollections(c.Call().get(), {}, &resp);
            if (!s.ok()) return RpcError(s, "list");
            if (c.json()) return PrintedJson(c, resp);
            Table t({"NAME", "KIND", "STATE", "LIVE", "ENTRIES", "STAGED", "ENCODER"});
            for (const auto& i : resp.collections()) {
              t.Add({i.config().name(), i.config().kind() == pb::SIMILARITY_IMAGE_CASES ? "image" : "text",
                     StateName(i.state()), absl::StrCat(i.live_version()), absl::StrCat(i.entry_count()),
                     absl::StrCat(i.staged_count()), i.encoder_fingerprint().substr(0, 60)});
            }
            t.Print(c.out());
            for (const auto& i : resp.collections()) {
              if (!i.error().empty()) c.out() << i.config().name() << ": " << i.error() << "\n";
            }
            return absl::OkStatus();
          }};
}

Command IndexExamples() {
  return {"similarity", "index-examples", "stage translation pairs from a TSV file",
          "--collection=NAME --file=pairs.tsv (key<TAB>source<TAB>target<TAB>pair[<TAB>quality])",
          {kCollection, {"file", "", "the pairs"}, {"batch", "500", "pairs per stream message"}},
          [](Context& c) -> absl::Status {
            ASSIGN_OR_RETURN(std::string collection, c.args().Required("collection"));
            ASSIGN_OR_RETURN(std::string file, c.args().Required("file"));
            ASSIGN_OR_RETURN(auto rows, ReadTsv("file", file));
            ASSIGN_OR_RETURN(int64_t batch, c.args().GetInt("batch"));
            auto ctx = c.Call();
            pb::IndexResponse resp;
            auto writer = Stub(c)->IndexExamples(ctx.get(), &resp);
            ProgressBar bar("index", static_cast<int64_t>(rows.size()));
            pb::IndexExamplesRequest req;
            int64_t sent = 0;
            bool open = true;
            for (size_t i = 0; i < rows.size() && open; ++i) {
              const auto& r = rows[i];
              if (r.size() < 4) {
                writer->WritesDone();
                writer->Finish();
                return absl::InvalidArgumentError(absl::StrCat(file, ":", i + 1, ": expected key<TAB>source<TAB>target<TAB>pair"));
              }
              pb::TranslationExample* e = req.add_examples();
              e->set_key(r[0]);
              e->set_source(r[1]);
              e->set_target(r[2]);
              e->set_pair(r[3]);
              float q;
              if (r.size() > 4 && absl::SimpleAtof(r[4], &q)) e->set_quality(q);
              if (req.examples_size() >= batch || i + 1 == rows.size()) {
                req.set_collection(collection);
                open = writer->Write(req);
                sent += req.examples_size();
                bar.Update(sent);
                req.Clear();
              }
            }
            bar.Finish();
            if (open) writer->WritesDone();
            grpc::Status s = writer->Finish();
            if (!s.ok()) return RpcError(s, absl::StrCat("index-examples (", resp.staged(), " staged)"));
            if (resp.staged() != sent) {
              return absl::DataLossError(absl::StrCat("index-examples: ", resp.staged(), " of ", sent, " staged"));
            }
            if (c.json()) return PrintedJson(c, resp);
            c.out() << "staged " << resp.staged() << " examples\n";
            return absl::OkStatus();
          }};
}

Command IndexImages() {
  return {"similarity", "index-images", "stage image cases from a TSV file",
          "--collection=NAME --file=cases.tsv (key<TAB>image path<TAB>label=value;...)",
          {kCollection, {"file", "", "the cases; paths relative to the file"},
           {"batch", "64", "cases per stream message"}},
          [](Context& c) -> absl::Status {
            ASSIGN_OR_RETURN(std::string collection, c.args().Required("collection"));
            ASSIGN_OR_RETURN(std::string file, c.args().Required("file"));
            ASSIGN_OR_RETURN(auto rows, ReadTsv("file", file));
            ASSIGN_OR_RETURN(int64_t batch, c.args().GetInt("batch"));
            const std::string base = file.find('/') == std::string::npos ? "." : file.substr(0, file.rfind('/'));
            auto ctx = c.Call();
            pb::IndexResponse resp;
            auto writer = Stub(c)->IndexImages(ctx.get(), &resp);
            ProgressBar bar("index", static_cast<int64_t>(rows.size()));
            pb::IndexImagesRequest req;
            int64_t sent = 0;
            bool open = true;
            for (size_t i = 0; i < rows.size() && open; ++i) {
              const auto& r = rows[i];
              absl::StatusOr<std::string> image =
                  r.size() >= 2 ? ReadFile("file", r[1][0] == '/' ? r[1] : base + "/" + r[1])
                                : absl::InvalidArgumentError(absl::StrCat(file, ":", i + 1, ": expected key<TAB>path"));
              if (!image.ok()) {
                writer->WritesDone();
                writer->Finish();
                return image.status();
              }
              pb::ImageCase* e = req.add_cases();
              e->set_key(r[0]);
              e->set_image(std::move(*image));
              if (r.size() > 2) {
                for (absl::string_view kv : absl::StrSplit(r[2], ';', absl::SkipEmpty())) {
                  std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
                  (*e->mutable_labels())[p.first] = p.second;
                }
              }
              if (req.cases_size() >= batch || i + 1 == rows.size()) {
                req.set_collection(collection);
                open = writer->Write(req);
                sent += req.cases_size();
                bar.Update(sent);
                req.Clear();
              }
            }
            bar.Finish();
            if (open) writer->WritesDone();
            grpc::Status s = writer->Finish();
            if (!s.ok()) return RpcError(s, absl::StrCat("index-images (", resp.staged(), " staged)"));
            if (resp.staged() != sent) {
              return absl::DataLossError(absl::StrCat("index-images: ", resp.staged(), " of ", sent, " staged"));
            }
            if (c.json()) return PrintedJson(c, resp);
            c.out() << "staged " << resp.staged() << " cases\n";
            return absl::OkStatus();
          }};
}

Command Publish() {
  return {"similarity", "publish", "fit the encoder, embed the staged entries, go live",
          "--collection=NAME", {kCollection},
          [](Context& c) -> absl::Status {
            pb::PublishSimilarityRequest req;
            ASSIGN_OR_RETURN(*req.mutable_collection(), c.args().Required("collection"));
            pb::PublishSimilarityResponse resp;
            grpc::Status s = Stub(c)->Publish(c.LongCall().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "publish");
            if (c.json()) return PrintedJson(c, resp);
            PrintInfo(c, resp.info());
            c.out() << "embedded " << resp.embedded_entries() << " entries, reused "
                    << resp.reused_entries() << "\n";
            return absl::OkStatus();
          }};
}

Command SelectExamples() {
  return {"similarity", "select-examples", "the k most similar translation pairs and the few-shot prompt",
          "--collection=NAME --pair=en-es --source=SENTENCE [--k=4]",
          {kCollection, {"source", "", "the sentence to translate"}, {"pair", "", "language pair, e.g. en-es"},
           {"k", "4", "examples (1..20)"}, {"min_similarity", "", "drop examples below this cosine"},
           {"diversity", "", "skip near-duplicates at or above this similarity"},
           {"min_quality", "", "drop examples of a known quality below this"},
           {"match", "source", "source (source to source) | target (source to target)"},
           {"source_language", "", "for the prompt, e.g. English"},
           {"target_language", "", "for the prompt, e.g. Spanish"}},
          [](Context& c) -> absl::Status {
            pb::SelectExamplesRequest req;
            ASSIGN_OR_RETURN(*req.mutable_collection(), c.args().Required("collection"));
            req.set_source(c.args().Get("source"));
            req.set_pair(c.args().Get("pair"));
            ASSIGN_OR_RETURN(int32_t k, c.args().GetInt32("k"));
            req.set_k(k);
            for (auto [flag, setter] :
                 std::vector<std::pair<const char*, void (pb::SelectExamplesRequest::*)(float)>>{
                     {"min_similarity", &pb::SelectExamplesRequest::set_min_similarity},
                     {"diversity", &pb::SelectExamplesRequest::set_diversity_threshold},
                     {"min_quality", &pb::SelectExamplesRequest::set_min_quality}}) {
              if (c.args().Get(flag).empty()) continue;
              ASSIGN_OR_RETURN(double v, c.args().GetDouble(flag));
              (req.*setter)(static_cast<float>(v));
            }
            // Any other word had been taken for "source".
            const std::string match = c.args().Get("match");
            if (match != "source" && match != "target") {
              return absl::InvalidArgumentError(absl::StrCat(
                  "--match: expected source or target, got ", QuoteUserInput(match)));
            }
            req.set_match(match == "target" ? pb::MATCH_SOURCE_TO_TARGET
                                            : pb::MATCH_SOURCE_TO_SOURCE);
            req.mutable_prompt_template()->set_source_language(c.args().Get("source_language"));
            req.mutable_prompt_template()->set_target_language(c.args().Get("target_language"));
            pb::SelectExamplesResponse resp;
            grpc::Status s = Stub(c)->SelectExamples(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "select-examples");
            if (c.json()) return PrintedJson(c, resp);
            Table t({"RANK", "SCORE", "KEY", "SOURCE", "TARGET"});
            int rank = 0;
            for (const pb::ScoredExample& e : resp.examples()) {
              t.Add({absl::StrCat(++rank), absl::StrFormat("%.4f", e.score()), e.example().key(),
                     e.example().source().substr(0, 50), e.example().target().substr(0, 50)});
            }
            t.Print(c.out());
            c.out() << "\n--- prompt ---\n" << resp.prompt() << "\n";
            return absl::OkStatus();
          }};
}

Command SearchImages() {
  return {"similarity", "search-image", "the k most similar image cases to a file or a stored case",
          "--collection=NAME (--image=FILE | --key=K) [--k=5]",
          {kCollection, {"image", "", "a PNG, JPEG or DICOM file"}, {"key", "", "a stored case"},
           {"k", "5", "cases (1..100)"}, {"modality", "", "only cases of this modality"},
           {"body_part", "", "only cases of this body part"},
           {"exclude_same_study", "false", "leave out the query's own study", true}},
          [](Context& c) -> absl::Status {
            pb::SearchImagesRequest req;
            ASSIGN_OR_RETURN(*req.mutable_collection(), c.args().Required("collection"));
            if (!c.args().Get("image").empty() && !c.args().Get("key").empty()) {
              return absl::InvalidArgumentError("--image and --key: give one of them, not both");
            }
            if (!c.args().Get("image").empty()) {
              ASSIGN_OR_RETURN(*req.mutable_image(), ReadFile("image", c.args().Get("image")));
            } else {
              ASSIGN_OR_RETURN(*req.mutable_key(), c.args().Required("key"));
            }
            ASSIGN_OR_RETURN(int32_t k, c.args().GetInt32("k"));
            req.set_k(k);
            req.set_modality(c.args().Get("modality"));
            req.set_body_part(c.args().Get("body_part"));
            ASSIGN_OR_RETURN(bool exclude, c.args().GetBool("exclude_same_study"));
            req.set_exclude_same_study(exclude);
            pb::SearchImagesResponse resp;
            grpc::Status s = Stub(c)->SearchImages(c.Call().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "search-image");
            if (c.json()) return PrintedJson(c, resp);
            Table t({"RANK", "SCORE", "KEY", "LABELS"});
            int rank = 0;
            for (const pb::ImageHit& h : resp.hits()) {
              t.Add({absl::StrCat(++rank), absl::StrFormat("%.4f", h.score()), h.key(), Labels(h.labels())});
            }
            t.Print(c.out());
            return absl::OkStatus();
          }};
}

Command Evaluate() {
  return {"similarity", "eval", "P@N (micro, macro) of labelled queries against the collection",
          "--collection=NAME --queries=q.tsv (image path or key:<stored key><TAB>label) --label_field=F",
          {kCollection, {"queries", "", "labelled queries"}, {"label_field", "", "the cases' class label, e.g. pathology"},
           {"recall", "false", "also the approximate index's recall against exact search", true}},
          [](Context& c) -> absl::Status {
            pb::EvaluateRequest req;
            ASSIGN_OR_RETURN(*req.mutable_collection(), c.args().Required("collection"));
            ASSIGN_OR_RETURN(*req.mutable_label_field(), c.args().Required("label_field"));
            ASSIGN_OR_RETURN(std::string file, c.args().Required("queries"));
            ASSIGN_OR_RETURN(auto rows, ReadTsv("queries", file));
            for (const auto& r : rows) {
              if (r.size() < 2) return absl::InvalidArgumentError(absl::StrCat("--queries: expected query<TAB>label"));
              pb::LabelledQuery* q = req.add_queries();
              if (r[0].rfind("key:", 0) == 0) {
                q->set_key(r[0].substr(4));
              } else {
                ASSIGN_OR_RETURN(*q->mutable_image(), ReadFile("queries", r[0]));
              }
              q->set_label(r[1]);
            }
            ASSIGN_OR_RETURN(bool recall, c.args().GetBool("recall"));
            req.set_compute_recall(recall);
            pb::EvaluateResponse resp;
            grpc::Status s = Stub(c)->Evaluate(c.LongCall().get(), req, &resp);
            if (!s.ok()) return RpcError(s, "eval");
            if (c.json()) return PrintedJson(c, resp);
            Table t({"N", "P@N MICRO", "P@N MACRO"});
            for (const auto& p : resp.precision()) {
              t.Add({absl::StrCat(p.n()), absl::StrFormat("%.4f", p.micro()), absl::StrFormat("%.4f", p.macro())});
            }
            t.Print(c.out());
            c.out() << resp.evaluated_queries() << " queries in " << resp.evaluated_classes() << " classes ("
                    << resp.skipped_queries() << " skipped)";
            if (resp.has_recall()) c.out() << "; recall " << absl::StrFormat("%.4f", resp.recall());
            c.out() << "\n";
            return absl::OkStatus();
          }};
}

}  // namespace

std::vector<Command> SimilarityCommands() {
  return {Create(), List(), IndexExamples(), IndexImages(), Publish(), SelectExamples(),
          SearchImages(), Evaluate()};
}

}  // namespace recctl
}  // namespace recsys
