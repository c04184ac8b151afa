#include "trainer/service/job_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"

namespace recsys {
namespace {

// Migration i (1-based) brings the schema from version i-1 to i. Never edit
// one that has shipped: add the next.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE jobs(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind INTEGER NOT NULL,
  state INTEGER NOT NULL,
  device TEXT NOT NULL,
  spec BLOB NOT NULL,
  created_at TEXT NOT NULL,
  started_at TEXT NOT NULL DEFAULT '',
  finished_at TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  version INTEGER NOT NULL DEFAULT 0,
  metrics_json TEXT NOT NULL DEFAULT '');
CREATE INDEX jobs_by_state ON jobs(state);
CREATE INDEX jobs_by_version ON jobs(version);
CREATE TABLE job_transitions(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  state INTEGER NOT NULL,
  at TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '');
CREATE INDEX transitions_by_job ON job_transitions(job_id);
CREATE TABLE job_epochs(
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  epoch INTEGER NOT NULL,
  loss REAL NOT NULL,
  hr10 REAL NOT NULL,
  ndcg10 REAL NOT NULL,
  seconds REAL NOT NULL,
  items_per_second REAL NOT NULL,
  PRIMARY KEY(job_id, epoch));
)sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kJobStoreSchemaVersion);

std::string Now() { return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()); }

// One prepared statement; finalized on destruction.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  absl::Status status() const {
    if (rc_ == SQLITE_OK) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("job store: ", sqlite3_errmsg(db_)));
  }
  Statement& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& Bind(int i, double v) {
    sqlite3_bind_double(stmt_, i, v);
    return *this;
  }
  Statement& Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& BindBlob(int i, const std::string& v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // true: a row; false: done.
  absl::StatusOr<bool> Step() {
    RETURN_IF_ERROR(status());
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return absl::InternalError(absl::StrCat("job store: ", sqlite3_errmsg(db_)));
  }
  absl::Status Run() { return Step().status(); }
  int64_t Int(int c) { return sqlite3_column_int64(stmt_, c); }
  double Real(int c) { return sqlite3_column_double(stmt_, c); }
  std::string Text(int c) {
    const void* p = sqlite3_column_blob(stmt_, c);
    const int n = sqlite3_column_bytes(stmt_, c);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

constexpr char kJobColumns[] =
    "id, kind, state, device, spec, created_at, started_at, finished_at, error, version, "
    "metrics_json";

}  // namespace

bool IsTerminal(v1::JobState s) {
  return s == v1::JOB_SUCCEEDED || s == v1::JOB_PUBLISHED || s == v1::JOB_PUBLISH_FAILED ||
         s == v1::JOB_FAILED || s == v1::JOB_CANCELLED;
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  const std::string lock_path = path + ".lock";
  const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("job store: cannot open ", lock_path, ": ", strerror(errno)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat(
        "job store: ", path, " is in use by another trainer (", lock_path, " is locked)"));
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK) {
    std::string err = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat("job store: cannot open ", path, ": ", err));
  }
  std::unique_ptr<JobStore> store(new JobStore(db, fd));
  {
    absl::MutexLock lock(&store->mu_);
    RETURN_IF_ERROR(store->ExecLocked(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"));
  }
  RETURN_IF_ERROR(store->Migrate());
  return store;
}

JobStore::~JobStore() {
  sqlite3_close(db_);
  close(lock_fd_);
}

absl::Status JobStore::ExecLocked(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("job store: ", message));
  }
  return absl::OkStatus();
}

absl::Status JobStore::Migrate() {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(ExecLocked(
      "CREATE TABLE IF NOT EXISTS schema_migrations("
      "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"));
  int current = 0;
  {
    Statement s(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) current = static_cast<int>(s.Int(0));
  }
  if (current > kJobStoreSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job store: schema version ", current, " is newer than this trainer's (",
        kJobStoreSchemaVersion, "); refusing to touch it"));
  }
  for (int v = current + 1; v <= kJobStoreSchemaVersion; ++v) {
    RETURN_IF_ERROR(ExecLocked("BEGIN IMMEDIATE"));
    absl::Status s = ExecLocked(kMigrations[v - 1]);
    if (s.ok()) {
      Statement ins(db_, "INSERT INTO schema_migrations(version, applied_at) VALUES(?, ?)");
      s = ins.Bind(1, int64_t{v}).Bind(2, Now()).Run();
    }
    if (!s.ok()) {
      ExecLocked("ROLLBACK").IgnoreError();
      return s;
    }
    RETURN_IF_ERROR(ExecLocked("COMMIT"));
  }
  schema_version_ = kJobStoreSchemaVersion;
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> JobStore::Create(const v1::JobSpec& spec, v1::JobKind kind,
                                         const std::string& device) {
  absl::MutexLock lock(&mu_);
  const std::string now = Now();
  RETURN_IF_ERROR(ExecLocked("BEGIN IMMEDIATE"));
  auto insert = [&]() -> absl::StatusOr<int64_t> {
    Statement s(db_,
                "INSERT INTO jobs(kind, state, device, spec, created_at) VALUES(?, ?, ?, ?, ?)");
    RETURN_IF_ERROR(s.Bind(1, int64_t{kind})
                        .Bind(2, int64_t{v1::JOB_QUEUED})
                        .Bind(3, device)
                        .BindBlob(4, spec.SerializeAsString())
                        .Bind(5, now)
                        .Run());
    const int64_t id = sqlite3_last_insert_rowid(db_);
    Statement t(db_, "INSERT INTO job_transitions(job_id, state, at, reason) VALUES(?, ?, ?, ?)");
    RETURN_IF_ERROR(
        t.Bind(1, id).Bind(2, int64_t{v1::JOB_QUEUED}).Bind(3, now).Bind(4, "submitted").Run());
    return id;
  };
  absl::StatusOr<int64_t> id = insert();
  if (!id.ok()) {
    ExecLocked("ROLLBACK").IgnoreError();
    return id.status();
  }
  RETURN_IF_ERROR(ExecLocked("COMMIT"));
  return GetLocked(*id);
}

absl::Status JobStore::Transition(int64_t id, v1::JobState state, const std::string& reason,
                                  const std::string& error) {
  absl::MutexLock lock(&mu_);
  const std::string now = Now();
  RETURN_IF_ERROR(ExecLocked("BEGIN IMMEDIATE"));
  auto apply = [&]() -> absl::Status {
    Statement s(db_,
                "UPDATE jobs SET state = ?1,"
                " started_at = CASE WHEN ?1 = ?4 AND started_at = '' THEN ?2 ELSE started_at END,"
                " finished_at = CASE WHEN ?5 THEN ?2 ELSE finished_at END,"
                " error = CASE WHEN ?6 <> '' THEN ?6 ELSE error END"
                " WHERE id = ?3");
    RETURN_IF_ERROR(s.Bind(1, int64_t{state})
                        .Bind(2, now)
                        .Bind(3, id)
                        .Bind(4, int64_t{v1::JOB_RUNNING})
                        .Bind(5, int64_t{IsTerminal(state) ? 1 : 0})
                        .Bind(6, error)
                        .Run());
    if (sqlite3_changes(db_) != 1) return absl::NotFoundError(absl::StrCat("job_id: no job ", id));
    Statement t(db_, "INSERT INTO job_transitions(job_id, state, at, reason) VALUES(?, ?, ?, ?)");
    return t.Bind(1, id).Bind(2, int64_t{state}).Bind(3, now).Bind(4, reason).Run();
  };
  absl::Status s = apply();
  if (!s.ok()) {
    ExecLocked("ROLLBACK").IgnoreError();
    return s;
  }
  return ExecLocked("COMMIT");
}

absl::Status JobStore::SetVersion(int64_t id, int64_t version) {
  absl::MutexLock lock(&mu_);
  Statement s(db_, "UPDATE jobs SET version = ? WHERE id = ?");
  return s.Bind(1, version).Bind(2, id).Run();
}

absl::Status JobStore::SetMetrics(int64_t id, const std::string& metrics_json) {
  absl::MutexLock lock(&mu_);
  Statement s(db_, "UPDATE jobs SET metrics_json = ? WHERE id = ?");
  return s.Bind(1, metrics_json).Bind(2, id).Run();
}

absl::Status JobStore::AddEpoch(int64_t id, const v1::EpochMetrics& e) {
  absl::MutexLock lock(&mu_);
  Statement s(db_,
              "INSERT OR REPLACE INTO job_epochs(job_id, epoch, loss, hr10, ndcg10, seconds,"
              " items_per_second) VALUES(?, ?, ?, ?, ?, ?, ?)");
  return s.Bind(1, id)
      .Bind(2, int64_t{e.epoch()})
      .Bind(3, e.loss())
      .Bind(4, e.validation_hr10())
      .Bind(5, e.validation_ndcg10())
      .Bind(6, e.seconds())
      .Bind(7, e.items_per_second())
      .Run();
}

absl::StatusOr<std::vector<v1::Job>> JobStore::QueryJobsLocked(
    const std::string& sql, const std::vector<int64_t>& args) {
  std::vector<v1::Job> jobs;
  {
    Statement s(db_, sql);
    for (size_t i = 0; i < args.size(); ++i) s.Bind(static_cast<int>(i) + 1, args[i]);
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      v1::Job& j = jobs.emplace_back();
      j.set_id(s.Int(0));
      j.set_kind(static_cast<v1::JobKind>(s.Int(1)));
      j.set_state(static_cast<v1::JobState>(s.Int(2)));
      j.set_device(s.Text(3));
      if (!j.mutable_spec()->ParseFromString(s.Text(4))) {
        return absl::DataLossError(absl::StrCat("job store: job ", j.id(), "'s spec is corrupt"));
      }
      j.set_created_time(s.Text(5));
      j.set_started_time(s.Text(6));
      j.set_finished_time(s.Text(7));
      j.set_error(s.Text(8));
      j.set_version(s.Int(9));
      j.set_metrics_json(s.Text(10));
    }
  }
  for (v1::Job& j : jobs) {
    Statement t(db_, "SELECT state, at, reason FROM job_transitions WHERE job_id = ? ORDER BY seq");
    t.Bind(1, j.id());
    while (true) {
      ASSIGN_OR_RETURN(bool row, t.Step());
      if (!row) break;
      v1::StateTransition* tr = j.add_transitions();
      tr->set_state(static_cast<v1::JobState>(t.Int(0)));
      tr->set_time(t.Text(1));
      tr->set_reason(t.Text(2));
    }
    Statement e(db_,
                "SELECT epoch, loss, hr10, ndcg10, seconds, items_per_second FROM job_epochs"
                " WHERE job_id = ? ORDER BY epoch");
    e.Bind(1, j.id());
    while (true) {
      ASSIGN_OR_RETURN(bool row, e.Step());
      if (!row) break;
      v1::EpochMetrics* m = j.add_epochs();
      m->set_epoch(static_cast<int32_t>(e.Int(0)));
      m->set_loss(e.Real(1));
      m->set_validation_hr10(e.Real(2));
      m->set_validation_ndcg10(e.Real(3));
      m->set_seconds(e.Real(4));
      m->set_items_per_second(e.Real(5));
    }
  }
  return jobs;
}

absl::StatusOr<v1::Job> JobStore::GetLocked(int64_t id) {
  ASSIGN_OR_RETURN(std::vector<v1::Job> jobs,
                   QueryJobsLocked(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = ?"),
                                   {id}));
  if (jobs.empty()) return absl::NotFoundError(absl::StrCat("job_id: no job ", id));
  return std::move(jobs[0]);
}

absl::StatusOr<v1::Job> JobStore::Get(int64_t id) {
  absl::MutexLock lock(&mu_);
  return GetLocked(id);
}

absl::StatusOr<std::vector<v1::Job>> JobStore::List(v1::JobState state, v1::JobKind kind,
                                                    int64_t before_id, int limit) {
  absl::MutexLock lock(&mu_);
  return QueryJobsLocked(
      absl::StrCat("SELECT ", kJobColumns,
                   " FROM jobs WHERE (?1 = 0 OR state = ?1) AND (?2 = 0 OR kind = ?2)"
                   " AND (?3 = 0 OR id < ?3) ORDER BY id DESC LIMIT ?4"),
      {int64_t{state}, int64_t{kind}, before_id, int64_t{limit}});
}

absl::StatusOr<std::vector<v1::Job>> JobStore::InStates(const std::vector<v1::JobState>& states) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> list;
  for (v1::JobState s : states) list.push_back(absl::StrCat(static_cast<int>(s)));
  return QueryJobsLocked(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE state IN (",
                                      absl::StrJoin(list, ","), ") ORDER BY id"),
                         {});
}

absl::StatusOr<int64_t> JobStore::JobOfVersion(int64_t version) {
  absl::MutexLock lock(&mu_);
  Statement s(db_, "SELECT id FROM jobs WHERE version = ? ORDER BY id DESC LIMIT 1");
  s.Bind(1, version);
  ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? s.Int(0) : 0;
}

absl::StatusOr<std::map<std::pair<v1::JobKind, v1::JobState>, int64_t>>
JobStore::CountByKindAndState() {
  absl::MutexLock lock(&mu_);
  Statement s(db_, "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state");
  std::map<std::pair<v1::JobKind, v1::JobState>, int64_t> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out[{static_cast<v1::JobKind>(s.Int(0)), static_cast<v1::JobState>(s.Int(1))}] = s.Int(2);
  }
  return out;
}

absl::StatusOr<int64_t> JobStore::MaxVersion() {
  absl::MutexLock lock(&mu_);
  Statement s(db_, "SELECT COALESCE(MAX(version), 0) FROM jobs");
  ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? s.Int(0) : 0;
}

}  // namespace recsys
