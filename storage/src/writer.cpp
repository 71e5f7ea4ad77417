#include "writer.hpp"

#include <exception>
#include <future>
#include <vector>

namespace warren::storage::detail {

Result<Statement*> Writer::Statements::get(const char* sql) {
  auto found = cache_.find(sql);
  if (found != cache_.end()) return &found->second;
  auto prepared = db_.prepare(sql);
  if (!prepared) return tl::unexpected(prepared.error());
  return &cache_.emplace(sql, std::move(*prepared)).first->second;
}

namespace {
// Log frames (pages) after which a checkpoint is asked for: 16 MiB.
constexpr int kCheckpointPages = 4096;
}  // namespace

Writer::Writer(Connection db, Connection checkpoints, int max_batch)
    : db_(std::move(db)),
      max_batch_(max_batch > 0 ? max_batch : 1),
      checkpoint_db_(std::move(checkpoints)) {
  (void)db_.exec("PRAGMA wal_autocheckpoint = 0");
  sqlite3_wal_hook(db_.handle(), &Writer::on_wal_commit, this);
  checkpoint_thread_ = std::thread([this] { checkpoint_loop(); });
  thread_ = std::thread([this] { loop(); });
}

Writer::~Writer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  {
    std::lock_guard lock(checkpoint_mutex_);
    checkpoint_stopping_ = true;
  }
  checkpoint_wake_.notify_one();
  checkpoint_thread_.join();
  // Leave the database file whole and the log empty for whoever opens it next.
  (void)db_.exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

int Writer::on_wal_commit(void* self, sqlite3*, const char*, int pages) {
  if (pages >= kCheckpointPages) {
    auto* writer = static_cast<Writer*>(self);
    {
      std::lock_guard lock(writer->checkpoint_mutex_);
      writer->checkpoint_due_ = true;
    }
    writer->checkpoint_wake_.notify_one();
  }
  return SQLITE_OK;
}

void Writer::checkpoint_loop() {
  std::unique_lock lock(checkpoint_mutex_);
  for (;;) {
    checkpoint_wake_.wait(lock, [&] { return checkpoint_stopping_ || checkpoint_due_; });
    if (checkpoint_stopping_) return;
    checkpoint_due_ = false;
    lock.unlock();
    // PASSIVE never blocks the writer; the log restarts from its beginning at the first commit
    // after a checkpoint has copied all of it.
    sqlite3_wal_checkpoint_v2(checkpoint_db_.handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                              nullptr);
    lock.lock();
  }
}

void Writer::submit(Operation operation, Completion done) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back({std::move(operation), std::move(done)});
  }
  wake_.notify_one();
}

Result<std::int64_t> Writer::submit_and_wait(Operation operation) {
  std::promise<Result<std::int64_t>> promise;
  auto future = promise.get_future();
  submit(std::move(operation), [&promise](Result<std::int64_t> r) { promise.set_value(r); });
  return future.get();
}

void Writer::loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything queued has committed
    // Whatever queued while the last batch committed forms the next one: under load batches grow
    // by themselves, and a lone write commits at once.
    std::deque<Queued> batch;
    while (!queue_.empty() && static_cast<int>(batch.size()) < max_batch_) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();
    commit_batch(batch);
    lock.lock();
  }
}

void Writer::commit_batch(std::deque<Queued>& batch) {
  std::vector<Result<std::int64_t>> results;
  results.reserve(batch.size());
  auto begun = db_.exec("BEGIN IMMEDIATE");
  if (!begun) {
    for (Queued& q : batch) q.done(tl::unexpected(begun.error()));
    return;
  }
  for (Queued& q : batch) {
    (void)db_.exec("SAVEPOINT operation");
    // An operation that throws fails alone, as one that returns an error does: the writer's
    // thread must outlive any one record.
    Result<std::int64_t> result = tl::unexpected(Error{"the record could not be written"});
    try {
      result = q.operation(statements_);
    } catch (const std::exception& e) {
      result = tl::unexpected(Error{std::string("the record could not be written: ") + e.what()});
    }
    if (!result) (void)db_.exec("ROLLBACK TO operation");
    (void)db_.exec("RELEASE operation");
    results.push_back(std::move(result));
  }
  if (auto committed = db_.exec("COMMIT"); !committed) {
    (void)db_.exec("ROLLBACK");
    for (Queued& q : batch) q.done(tl::unexpected(committed.error()));
    return;
  }
  for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
}

}  // namespace warren::storage::detail
