// Suites run on this machine: `sgs run` child processes N at a time, with
// progress, resumption and failures isolated; one run of a stage for a Slurm
// array task.
#include "app/suite/internal.h"
#include "app/process.h"

#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/io.h>
#include <sgs/run_dir.h>
#include <sgs/registry.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <iostream>
#include <map>
#include <set>

#include <sys/wait.h>

namespace sgs {

using namespace suite_detail;

// ---- running locally ----

namespace {

class LocalRunner {
 public:
  LocalRunner(const Suite& suite, const SuiteOptions& options) : suite_(suite), o_(options) {
    tty_ = isatty(STDERR_FILENO) != 0;
  }

  int run() {
    for (const auto& r : suite_.runs(1)) add(r);
    for (const auto& r : suite_.runs(2))
      if (!r.after.empty()) add(r);  // started once the run it follows has completed
    for (const auto& v : suite_.searched_variants()) {
      waiting_[v] = 0;
      for (const auto& r : suite_.runs(2)) waiting_[v] += r.variant == v;
      plan_finals(v);
    }
    size_t total = entries_.size();
    for (const auto& [v, n] : waiting_) total += n;
    std::fprintf(stderr, "suite %s: %zu runs, %zu completed before; %lld at a time; each run's output in %s/<run>/log.txt\n",
                 suite_.path().c_str(), total, count(State::Already), static_cast<long long>(o_.jobs),
                 o_.out_dir.c_str());
    auto last_line = Clock::now();
    int forwarded = 0;
    while (true) {
      if (caught_interrupt() != 0 && forwarded != caught_interrupt()) {
        forwarded = caught_interrupt();
        clear_status();
        std::fprintf(stderr, "sgs suite: %s: stopping; the running runs write a checkpoint and stop\n",
                     strsignal(forwarded));
        for (auto& e : entries_)
          if (e.state == State::Running) kill(e.pid, forwarded);
      }
      for (size_t i = 0; i < entries_.size(); ++i) reap(entries_[i]);  // reap may add final runs
      if (caught_interrupt() == 0) launch_pending();
      size_t running = count(State::Running), pending = count(State::Pending) + count(State::Elsewhere);
      if (running == 0 && (pending == 0 || caught_interrupt() != 0)) break;
      if (tty_) {
        show_status(false);
      } else if (Clock::now() - last_line > std::chrono::seconds(60)) {
        show_status(true);
        last_line = Clock::now();
      }
      nap(0.1);
    }
    clear_status();
    return finish();
  }

 private:
  enum class State { Pending, Running, Done, Already, Failed, Elsewhere, Interrupted, Blocked };
  struct Entry {
    SuiteRun run;
    State state = State::Pending;
    pid_t pid = -1;
    Clock::time_point start;
    double seconds = 0;
    std::string error;
  };

  fs::path dir(const Entry& e) const { return o_.out_dir / e.run.name; }
  size_t count(State s) const {
    return static_cast<size_t>(std::count_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.state == s; }));
  }

  void add(const SuiteRun& run) {
    Entry e;
    e.run = run;
    auto conflict = config_conflict(run, o_.out_dir);
    if (!conflict.empty()) {
      e.state = State::Failed;
      e.error = conflict;
    } else if (read_run_state(o_.out_dir / run.name).completed() && !run_dir_locked_elsewhere(o_.out_dir / run.name)) {
      e.state = State::Already;
    }
    entries_.push_back(std::move(e));
  }

  // Plans a searched variant's final runs once all its search runs completed.
  void plan_finals(const std::string& variant) {
    if (planned_.count(variant)) return;
    for (size_t i : suite_.search_runs(variant))
      for (const auto& e : entries_)
        if (e.run.name == suite_.runs(1)[i].name && e.state != State::Done && e.state != State::Already) return;
    Selection sel = suite_.select(variant, o_.out_dir);
    planned_.insert(variant);
    write_selections(suite_, {sel}, o_.out_dir);
    event(selection_text(suite_, sel));
    waiting_[variant] = 0;
    for (const auto& r : suite_.runs(2)) {
      if (r.variant != variant) continue;
      if (sel.ready()) {
        add(suite_.plan_final(r, sel));
      } else {
        not_run_.emplace_back(r.name, sel.error);
      }
    }
  }

  void launch_pending() {
    for (auto& e : entries_) {
      if (count(State::Running) >= static_cast<size_t>(std::max<int64_t>(1, o_.jobs))) return;
      if (e.state == State::Elsewhere && Clock::now() - e.start < std::chrono::seconds(2)) continue;
      if (e.state != State::Pending && e.state != State::Elsewhere) continue;
      if (!e.run.after.empty() && !followed_done(e)) continue;
      int lock = try_lock(dir(e));
      if (lock < 0) {
        if (e.state == State::Pending) event("running elsewhere, waiting for it: " + e.run.name);
        e.state = State::Elsewhere;
        e.start = Clock::now();
        continue;
      }
      // Another process may have run it meanwhile (a second suite on this
      // folder): counted as done only when it ran the planned config.
      auto conflict = config_conflict(e.run, o_.out_dir);
      if (!conflict.empty()) {
        close(lock);
        e.state = State::Failed;
        e.error = conflict;
        event("FAILED " + e.run.name + ": " + e.error);
        continue;
      }
      RunState st = read_run_state(dir(e));
      if (st.completed()) {
        close(lock);
        e.state = State::Already;
        if (e.run.phase == "search") plan_finals(std::string(e.run.variant));
        return;  // plan_finals may have added entries: start over
      }
      try {
        e.pid = launch(e.run, dir(e), st.fresh() || !st.has_file, lock, o_.sgs_binary);
      } catch (const std::exception& ex) {
        close(lock);
        e.state = State::Failed;
        e.error = ex.what();
        continue;
      }
      close(lock);  // the child holds it
      e.state = State::Running;
      e.start = Clock::now();
    }
  }

  // Whether the run `e` follows has completed; a followed run that failed
  // leaves `e` blocked (not run, with why).
  bool followed_done(Entry& e) {
    for (const auto& f : entries_) {
      if (f.run.name != e.run.after) continue;
      if (f.state == State::Done || f.state == State::Already) return true;
      if (f.state == State::Failed || f.state == State::Blocked) {
        e.state = State::Blocked;
        e.error = "not started: the run it follows, " + f.run.name + ", failed";
        event("not starting " + e.run.name + ": the run it follows, " + f.run.name + ", failed");
      }
      return false;
    }
    return false;
  }

  void reap(Entry& e) {
    if (e.state != State::Running) return;
    int status = 0;
    pid_t r = waitpid(e.pid, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR)) return;
    e.seconds = std::chrono::duration<double>(Clock::now() - e.start).count();
    RunState st = read_run_state(dir(e));
    if (r > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && st.completed()) {
      e.state = State::Done;
      durations_.push_back(e.seconds);
      event("completed " + e.run.name + " (" + format_seconds(e.seconds) + ")");
    } else if (caught_interrupt() != 0 && !st.fresh()) {  // stopped by the signal we forwarded
      e.state = State::Interrupted;
      event("interrupted " + e.run.name + (st.status == RunStatus::Interrupted ? " (checkpoint written)" : ""));
    } else {
      e.state = State::Failed;
      e.error = failure_text(dir(e), st, r > 0 ? describe_exit(status) : "lost");
      event("FAILED " + e.run.name + ": " + e.error);
    }
    if (e.run.phase == "search" && e.state == State::Done) plan_finals(std::string(e.run.variant));
  }

  std::string status_line() const {
    size_t done = count(State::Done) + count(State::Already), failed = count(State::Failed);
    size_t running = count(State::Running), pending = count(State::Pending) + count(State::Elsewhere);
    for (const auto& [v, n] : waiting_) pending += n;
    size_t total = done + failed + running + pending + count(State::Interrupted) + not_run_.size();
    std::string eta = "-";
    if (!durations_.empty()) {
      double mean = 0;
      for (double d : durations_) mean += d;
      mean /= static_cast<double>(durations_.size());
      double left = static_cast<double>(pending) * mean;
      for (const auto& e : entries_)
        if (e.state == State::Running)
          left += std::max(0.0, mean - std::chrono::duration<double>(Clock::now() - e.start).count());
      eta = format_seconds(left / static_cast<double>(std::max<int64_t>(1, o_.jobs)));
    }
    char buf[200];
    std::snprintf(buf, sizeof buf, "suite: %zu/%zu done, %zu running, %zu failed, %zu pending, ETA %s", done, total,
                  running, failed, pending, eta.c_str());
    return buf;
  }

  void clear_status() {
    if (tty_ && shown_) std::fprintf(stderr, "\r\x1b[K");
    shown_ = false;
    std::fflush(stderr);
  }

  void show_status(bool newline) {
    if (tty_) {
      std::string line = status_line();
      if (shown_ && line == shown_line_ && Clock::now() - shown_at_ < std::chrono::seconds(1)) return;
      std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
      shown_ = true;
      shown_line_ = line;
      shown_at_ = Clock::now();
    } else if (newline) {
      std::fprintf(stderr, "%s\n", status_line().c_str());
    }
    std::fflush(stderr);
  }

  void event(const std::string& text) {
    clear_status();
    std::fprintf(stderr, "%s\n", text.c_str());
    if (!tty_) std::fprintf(stderr, "%s\n", status_line().c_str());
    std::fflush(stderr);
  }

  int finish() {
    std::vector<std::pair<std::string, std::string>> failed, not_run = not_run_;
    size_t completed = 0, already = 0;
    for (const auto& e : entries_) {
      if (e.state == State::Done) ++completed;
      if (e.state == State::Already) ++completed, ++already;
      if (e.state == State::Failed) failed.emplace_back(e.run.name, e.error);
      if (e.state == State::Interrupted) not_run.emplace_back(e.run.name, "interrupted (resumes when the suite is run again)");
      if (e.state == State::Pending || e.state == State::Elsewhere) not_run.emplace_back(e.run.name, "not started");
      if (e.state == State::Blocked) not_run.emplace_back(e.run.name, e.error);
    }
    for (const auto& [v, n] : waiting_)
      if (!planned_.count(v) && n > 0) {
        Selection sel = suite_.select(v, o_.out_dir);
        for (const auto& r : suite_.runs(2))
          if (r.variant == v) not_run.emplace_back(r.name, "waits for its search: " + sel.error);
      }
    size_t total = completed + failed.size() + not_run.size();
    print_report(std::cout, o_.out_dir, total, completed, already, failed, not_run);
    if (caught_interrupt() != 0) return 128 + caught_interrupt();
    return failed.empty() && not_run.empty() ? 0 : 1;
  }

  const Suite& suite_;
  const SuiteOptions& o_;
  bool tty_ = false, shown_ = false;
  std::string shown_line_;
  Clock::time_point shown_at_;
  std::deque<Entry> entries_;  // references stay valid when final runs are added
  std::map<std::string, size_t> waiting_;  // searched variant -> final runs not planned yet
  std::set<std::string> planned_;
  std::vector<std::pair<std::string, std::string>> not_run_;
  std::vector<double> durations_;
};

}  // namespace

int run_suite(const Suite& suite, const SuiteOptions& options) {
  claim_suite_folder(suite, options.out_dir, [&] { check_conflicts(suite.runs(1), options.out_dir); });
  catch_interrupts();
  LocalRunner runner(suite, options);
  return runner.run();
}

// ---- one run (a Slurm array task) ----

int run_suite_index(const Suite& suite, const SuiteOptions& options, int stage, int64_t index) {
  if (stage == 0) stage = std::max(1, current_stage(suite, options.out_dir));
  if (stage < 1 || stage > suite.stages())
    throw ConfigError("--stage " + std::to_string(stage) + ": the suite has " + std::to_string(suite.stages()) +
                      " stage(s)");
  const auto& list = suite.runs(stage);
  if (index < 0 || static_cast<size_t>(index) >= list.size())
    throw ConfigError("--index " + std::to_string(index) + ": stage " + std::to_string(stage) + " has " +
                      std::to_string(list.size()) + " runs (0-" + std::to_string(list.size() - 1) + ")");
  claim_suite_folder(suite, options.out_dir);
  SuiteRun run = list[static_cast<size_t>(index)];
  if (stage == 2 && run.config.is_null()) run = suite.plan_final(run, suite.select(run.variant, options.out_dir));
  if (const std::string waits = Suite::waits_for(run, options.out_dir); !waits.empty())
    throw std::runtime_error(run.name + ": " + waits);
  auto conflict = config_conflict(run, options.out_dir);
  if (!conflict.empty()) throw ConfigError(conflict);
  const fs::path dir = options.out_dir / run.name;
  std::fprintf(stderr, "sgs suite: stage %d run %lld: %s\n", stage, static_cast<long long>(index), run.name.c_str());
  int lock = try_lock(dir);
  if (lock < 0) throw std::runtime_error(run.name + ": another process is running it now");
  conflict = config_conflict(run, options.out_dir);
  if (!conflict.empty()) {
    close(lock);
    throw ConfigError(conflict);
  }
  RunState st = read_run_state(dir);
  if (st.completed()) {
    close(lock);
    std::fprintf(stderr, "%s: already completed\n", run.name.c_str());
    return 0;
  }
  catch_interrupts();
  const bool fresh = st.fresh() || !st.has_file;
  const auto start = Clock::now();
  pid_t pid = launch(run, dir, fresh, lock, options.sgs_binary);
  close(lock);
  std::fprintf(stderr, "%s: %s, log in %s\n", run.name.c_str(), fresh ? "started" : "resumed",
               (dir / "log.txt").c_str());
  int status = 0, forwarded = 0;
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) break;
    if (caught_interrupt() != 0 && forwarded != caught_interrupt()) {
      forwarded = caught_interrupt();
      kill(pid, forwarded);
    }
    nap(0.1);
  }
  st = read_run_state(dir);
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && st.completed()) {
    std::fprintf(stderr, "%s: completed (%s)\n", run.name.c_str(), format_seconds(seconds).c_str());
    return 0;
  }
  std::fprintf(stderr, "%s: %s\n", run.name.c_str(), failure_text(dir, st, describe_exit(status)).c_str());
  if (caught_interrupt() != 0) return 128 + caught_interrupt();
  return 1;
}

}  // namespace sgs
