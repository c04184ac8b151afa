// The pieces every recctl command shares: how it reaches the services, how
// it prints, and how commands are declared.
//
// Addresses: --retrieval, --recommender, --trainer, --similarity (host:port),
// else the same keys in the config file (--config, $RECCTL_CONFIG, or
// ~/.config/recctl.yaml: one `key: value` per line, `#` comments), else
// the defaults 127.0.0.1:50051 .. 50054. --deadline bounds every call.
// Output: readable tables by default; --json prints the reply as JSON (one
// object per reply, keys sorted) for scripts. Errors: the server's status code and
// message on stderr and a non-zero exit (1; 2 for a usage error).
#ifndef RECSYS_CLIENTS_RECCTL_RECCTL_H_
#define RECSYS_CLIENTS_RECCTL_RECCTL_H_

#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "clients/recctl/command_line.h"
#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"

namespace recsys {
namespace recctl {

class Context {
 public:
  Context(Args args, std::map<std::string, std::string> config);

  const Args& args() const { return args_; }
  bool json() const { return json_; }
  // A channel to `service` ("retrieval", "recommender", "trainer", "similarity").
  std::shared_ptr<grpc::Channel> Channel(const std::string& service);
  // A client context with the --deadline.
  std::unique_ptr<grpc::ClientContext> Call() const;
  absl::Duration deadline() const { return deadline_; }
  // Calls that do work proportional to a catalog (publish, evaluate):
  // at least 10 minutes; a longer --deadline raises it, never lowers it.
  absl::Duration long_deadline() const;
  std::unique_ptr<grpc::ClientContext> LongCall() const;

  // --json: the message as one JSON object; else nothing (callers print a table).
  void PrintJson(const google::protobuf::Message& message) const;
  std::ostream& out() const { return std::cout; }
  std::ostream& err() const { return std::cerr; }

 private:
  Args args_;
  std::map<std::string, std::string> config_;
  bool json_ = false;
  absl::Duration deadline_ = absl::Seconds(30);
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
};

// Prints `message` as JSON (c.json() mode) and returns OK.
absl::Status PrintedJson(const Context& c, const google::protobuf::Message& message);

// A failed RPC as a Status that says which call failed.
absl::Status RpcError(const grpc::Status& status, const std::string& what);

// `path`, named by --`flag`, opened for reading: NOT_FOUND when it does not
// exist or cannot be opened, INVALID_ARGUMENT naming the flag when it is not
// a regular file (a directory read as empty; /dev/zero or a FIFO never
// ended, and recctl read until it ran out of memory).
absl::StatusOr<std::ifstream> OpenInputFile(const std::string& flag, const std::string& path,
                                            std::ios::openmode mode = std::ios::in);

struct Command {
  std::string group;    // "collections", "model", "recommend", "trainer", "similarity"
  std::string name;     // "create", "search", ...
  std::string summary;  // one line
  std::string usage;    // argument synopsis
  std::vector<FlagSpec> flags;
  std::function<absl::Status(Context&)> run;
};

// Flags every command accepts.
std::vector<FlagSpec> GlobalFlags();

// Each group registers its commands.
std::vector<Command> CollectionCommands();
std::vector<Command> RecommendCommands();
std::vector<Command> TrainerCommands();
std::vector<Command> SimilarityCommands();
std::vector<Command> ModelCommands();

// A column-aligned table.
class Table {
 public:
  explicit Table(std::vector<std::string> headers) : rows_{std::move(headers)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// A progress bar on stderr ("[=====>    ] 52% 10400/20000 3120/s ETA 3s"),
// redrawn at most 10 times a second, when stderr is a terminal.
class ProgressBar {
 public:
  ProgressBar(std::string what, int64_t total);
  void Update(int64_t done);
  void Finish();

 private:
  std::string what_;
  int64_t total_;
  absl::Time start_ = absl::Now();
  absl::Time last_ = absl::InfinitePast();
  bool tty_;
};

}  // namespace recctl
}  // namespace recsys

#endif  // RECSYS_CLIENTS_RECCTL_RECCTL_H_
