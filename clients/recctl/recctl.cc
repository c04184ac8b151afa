#include "clients/recctl/recctl.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/grpc_status.h"
#include "common/user_input.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace recsys {
namespace recctl {
namespace {

const std::map<std::string, std::string>& DefaultAddresses() {
  static const auto* m = new std::map<std::string, std::string>{
      {"retrieval", "127.0.0.1:50051"},
      {"recommender", "127.0.0.1:50052"},
      {"trainer", "127.0.0.1:50053"},
      {"similarity", "127.0.0.1:50054"}};
  return *m;
}

}  // namespace

std::vector<FlagSpec> GlobalFlags() {
  return {
      {"retrieval", "", "retrieval sidecar host:port (config key: retrieval)"},
      {"recommender", "", "recommendation server host:port (config key: recommender)"},
      {"trainer", "", "trainer service host:port (config key: trainer)"},
      {"similarity", "", "similarity endpoint host:port (config key: similarity)"},
      {"config", "", "config file (default $RECCTL_CONFIG or ~/.config/recctl.yaml)"},
      {"deadline", "30s", "deadline of each call"},
      {"json", "false", "print replies as JSON", true},
      {"help", "false", "this help", true},
  };
}

Context::Context(Args args, std::map<std::string, std::string> config)
    : args_(std::move(args)), config_(std::move(config)) {
  json_ = args_.GetBool("json").value_or(false);
  deadline_ = args_.GetDuration("deadline").value_or(absl::Seconds(30));
}

std::shared_ptr<grpc::Channel> Context::Channel(const std::string& service) {
  auto it = channels_.find(service);
  if (it != channels_.end()) return it->second;
  std::string target = args_.Get(service);
  if (target.empty() && config_.count(service)) target = config_.at(service);
  if (target.empty()) target = DefaultAddresses().at(service);
  grpc::ChannelArguments ca;
  ca.SetMaxReceiveMessageSize(64 << 20);
  ca.SetMaxSendMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), ca);
  channels_[service] = channel;
  return channel;
}

std::unique_ptr<grpc::ClientContext> Context::Call() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  return ctx;
}

absl::Duration Context::long_deadline() const { return std::max(deadline_, absl::Minutes(10)); }

std::unique_ptr<grpc::ClientContext> Context::LongCall() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + long_deadline()));
  return ctx;
}

void Context::PrintJson(const google::protobuf::Message& message) const {
  std::string text;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(message, &text, o).ok()) text = "{}";
  // Map fields (payloads) come out in hash order; re-emitting through a
  // sorted-key object makes the same reply print the same bytes.
  const nlohmann::json sorted = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  out() << (sorted.is_discarded() ? text : sorted.dump()) << "\n";
}

absl::Status PrintedJson(const Context& c, const google::protobuf::Message& message) {
  c.PrintJson(message);
  return absl::OkStatus();
}

absl::StatusOr<std::ifstream> OpenInputFile(const std::string& flag, const std::string& path,
                                            std::ios::openmode mode) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("--", flag, ": no such file ", QuoteUserInput(path)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, ": expected a regular file, got ",
        S_ISDIR(st.st_mode) ? "the directory " : "the special file ", QuoteUserInput(path)));
  }
  std::ifstream in(path, mode);
  if (!in) return absl::NotFoundError(absl::StrCat("--", flag, ": cannot read ", QuoteUserInput(path)));
  return in;
}

absl::Status RpcError(const grpc::Status& status, const std::string& what) {
  const absl::Status s = FromGrpcStatus(status);
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> width;
  for (const auto& row : rows_) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, row[i]);
      if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

ProgressBar::ProgressBar(std::string what, int64_t total)
    : what_(std::move(what)), total_(total), tty_(isatty(STDERR_FILENO) == 1) {}

void ProgressBar::Update(int64_t done) {
  const absl::Time now = absl::Now();
  if (!tty_ || (now - last_ < absl::Milliseconds(100) && done < total_)) return;
  last_ = now;
  const double fraction = total_ > 0 ? static_cast<double>(done) / total_ : 0;
  const double secs = absl::ToDoubleSeconds(now - start_);
  const double rate = secs > 0 ? done / secs : 0;
  const int filled = static_cast<int>(fraction * 30);
  std::string bar(filled, '=');
  if (filled < 30) bar += '>';
  bar.resize(30, ' ');
  std::cerr << absl::StrFormat("\r%s [%s] %3.0f%% %d/%d %.0f/s ETA %.0fs ", what_, bar,
                               100 * fraction, done, total_, rate,
                               rate > 0 ? (total_ - done) / rate : 0.0)
            << std::flush;
}

void ProgressBar::Finish() {
  if (tty_) std::cerr << "\n";
}

}  // namespace recctl
}  // namespace recsys
