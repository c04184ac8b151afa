// retrieval_repair: the operator's command for a DEGRADED collection (a
// corrupt staging log, see staging_log.h). Run it with the server stopped:
//
//   retrieval_repair --data_dir=/var/lib/retrieval --collection=items
//       --salvage_staging_log
//
// keeps every valid record of the collection's staging logs (the damaged
// files are kept beside them as <name>.corrupt-<unix time>) and prints what
// was kept and dropped. The alternative is restoring the collection's
// directory from a backup.
//
//   retrieval_repair --data_dir=... --collection=items --seal_legacy_metadata
//
// upgrades a collection written before metadata files were checksummed:
// collection.json, LIVE and every version's MANIFEST.json get their
// checksum, after each version's files are verified against its manifest
// (a version that fails is left as it is and reported). Only for files the
// operator trusts: it is the one place unsealed files are accepted.
//
// Exit status: 0 done, 1 refused or failed.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "retrieval/snapshot.h"
#include "retrieval/staging_log.h"

ABSL_FLAG(std::string, data_dir, "", "The retrieval server's --data_dir.");
ABSL_FLAG(std::string, collection, "", "The DEGRADED collection.");
ABSL_FLAG(bool, salvage_staging_log, false,
          "Rewrite its staging logs with only their valid records.");
ABSL_FLAG(bool, seal_legacy_metadata, false,
          "Add checksums to metadata written before they existed.");

namespace {

// Seals collection.json, LIVE and the manifests of `dir`.
int SealLegacy(const std::string& dir) {
  using recsys::JoinPath;
  namespace r = recsys::retrieval;
  const std::string config_path = JoinPath(dir, "collection.json");
  auto text = recsys::ReadFileToString(config_path);
  if (!text.ok()) {
    std::cerr << text.status() << "\n";
    return 1;
  }
  auto sealed = r::SealLegacyJson(*text, config_path);
  if (sealed.ok()) {
    if (auto s = recsys::WriteFileAtomically(config_path, *sealed); !s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
    text = *sealed;
  } else if (!absl::IsFailedPrecondition(sealed.status())) {
    std::cerr << sealed.status() << "\n";
    return 1;
  }
  auto config = r::ConfigFromJson(*text);
  if (!config.ok()) {
    std::cerr << config_path << ": " << config.status() << "\n";
    return 1;
  }
  const std::string versions = JoinPath(dir, "versions");
  auto names = recsys::ListDirectory(versions);
  if (!names.ok()) {
    std::cerr << names.status() << "\n";
    return 1;
  }
  for (const std::string& name : *names) {
    int64_t v = 0;
    if (name.size() != 21 || name[0] != 'v' || !absl::SimpleAtoi(name.substr(1), &v)) continue;
    const std::string manifest = JoinPath(JoinPath(versions, name), "MANIFEST.json");
    auto m = recsys::ReadFileToString(manifest);
    if (!m.ok()) continue;
    auto ms = r::SealLegacyJson(*m, manifest);
    if (!ms.ok()) {
      if (!absl::IsFailedPrecondition(ms.status())) std::cerr << ms.status() << "\n";
      continue;
    }
    (void)recsys::WriteFileAtomically(manifest, *ms);
    auto loaded = r::ReadSnapshot(JoinPath(versions, name), *config, v);
    if (!loaded.ok()) {
      std::cerr << "version " << v << " does not verify, left unsealed: "
                << loaded.status() << "\n";
      (void)recsys::WriteFileAtomically(manifest, *m);
      continue;
    }
    std::cout << "version " << v << ": sealed (" << (*loaded).version->size()
              << " entries verified)\n";
  }
  const std::string live_path = JoinPath(dir, "LIVE");
  if (auto live = recsys::ReadFileToString(live_path); live.ok()) {
    int64_t v = 0;
    std::string digits(absl::StripAsciiWhitespace(*live));
    if (!r::LiveFromJson(*live).ok() && absl::SimpleAtoi(digits, &v) && v > 0 &&
        absl::StrCat(v) == digits) {
      (void)recsys::WriteFileAtomically(live_path, r::LiveToJson({v, false}));
      std::cout << "LIVE: sealed (version " << v << ")\n";
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  recsys::ParseCommandLineWithHelp(argc, argv, "The operator's command for a DEGRADED collection (run with the server stopped).\n  retrieval_repair --data_dir=DIR --collection=NAME --salvage_staging_log | --seal_legacy_metadata");
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  const std::string name = absl::GetFlag(FLAGS_collection);
  if (data_dir.empty() || name.empty() ||
      absl::GetFlag(FLAGS_salvage_staging_log) ==
          absl::GetFlag(FLAGS_seal_legacy_metadata)) {
    std::cerr << "usage: retrieval_repair --data_dir=DIR --collection=NAME "
                 "(--salvage_staging_log | --seal_legacy_metadata)\n";
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
  if (absl::GetFlag(FLAGS_seal_legacy_metadata)) return SealLegacy(dir);
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
