// retrieval_repair: the operator's command for a DEGRADED collection (a
// corrupt staging log, see staging_log.h). Run it with the server stopped:
//
//   retrieval_repair --data_dir=/var/lib/retrieval --collection=items \
//       --salvage_staging_log
//
// keeps every valid record of the collection's staging logs (the damaged
// files are kept beside them as <name>.corrupt-<unix time>) and prints what
// was kept and dropped. The alternative is restoring the collection's
// directory from a backup. Exit status: 0 done, 1 refused or failed.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/file_util.h"
#include "retrieval/snapshot.h"
#include "retrieval/staging_log.h"

ABSL_FLAG(std::string, data_dir, "", "The retrieval server's --data_dir.");
ABSL_FLAG(std::string, collection, "", "The DEGRADED collection.");
ABSL_FLAG(bool, salvage_staging_log, false,
          "Rewrite its staging logs with only their valid records.");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  const std::string name = absl::GetFlag(FLAGS_collection);
  if (data_dir.empty() || name.empty() || !absl::GetFlag(FLAGS_salvage_staging_log)) {
    std::cerr << "usage: retrieval_repair --data_dir=DIR --collection=NAME "
                 "--salvage_staging_log\n";
    return 1;
  }
  // The server's own lock: never rewrite logs a running server appends to.
  const std::string lock = recsys::JoinPath(data_dir, ".lock");
  const int fd = open(lock.c_str(), O_RDWR | O_CLOEXEC);
  if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
    std::cerr << data_dir << " is in use by a running retrieval server; stop it first\n";
    return 1;
  }
  const std::string dir = recsys::JoinPath(data_dir, name);
  auto text = recsys::ReadFileToString(recsys::JoinPath(dir, "collection.json"));
  if (!text.ok()) {
    std::cerr << text.status() << "\n";
    return 1;
  }
  auto config = recsys::retrieval::ConfigFromJson(*text);
  if (!config.ok()) {
    std::cerr << dir << ": " << config.status()
              << " (restore the directory instead)\n";
    return 1;
  }
  auto report = recsys::retrieval::StagingLog::Salvage(dir, config->dimension,
                                                       /*covered_seq=*/0);
  if (!report.ok()) {
    std::cerr << report.status() << "\n";
    return 1;
  }
  std::cout << "collection '" << name << "': kept " << report->records
            << " valid records, dropped " << report->corrupt_records
            << " corrupt ones"
            << (report->corruption.empty() ? " (nothing was corrupt)"
                                           : "; first damage: " + report->corruption)
            << "\n";
  if (fd >= 0) close(fd);
  return 0;
}
