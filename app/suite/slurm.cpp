// Suites on Slurm: one job array per stage (a script that runs
// `sgs suite --index`), submitted and followed with squeue.
#include "app/suite/internal.h"
#include "app/process.h"

#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/io.h>
#include <sgs/run_dir.h>
#include <sgs/registry.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

namespace sgs {

using namespace suite_detail;

// ---- Slurm ----

namespace {

std::string array_spec(const std::vector<int64_t>& indices) {
  std::string out;
  for (size_t i = 0; i < indices.size();) {
    size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(indices[i]) + (j > i ? "-" + std::to_string(indices[j]) : "");
    i = j + 1;
  }
  return out;
}

std::string binary_path(const std::string& binary) {
  std::error_code ec;
  fs::path p = binary == "/proc/self/exe" ? fs::read_symlink(binary, ec) : fs::absolute(binary, ec);
  std::string s = p.string();
  const std::string deleted = " (deleted)";
  if (s.size() > deleted.size() && s.compare(s.size() - deleted.size(), deleted.size(), deleted) == 0)
    s.resize(s.size() - deleted.size());
  return s;
}

// Runs a shell command; returns its exit status and output (stdout and stderr).
std::pair<int, std::string> capture(const std::string& command) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, "cannot run: " + command};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  return s.substr(b);
}

// The runs of a stage that a job array would run now.
std::vector<SuiteRun> stage_todo(const Suite& suite, const fs::path& out_dir, int stage, std::vector<int64_t>& indices) {
  std::vector<SuiteRun> out;
  indices.clear();
  std::map<std::string, Selection> sel;
  const auto& list = suite.runs(stage);
  for (size_t i = 0; i < list.size(); ++i) {
    SuiteRun run = list[i];
    if (stage == 2 && run.config.is_null()) {
      if (!sel.count(run.variant)) sel[run.variant] = suite.select(run.variant, out_dir);
      if (!sel[run.variant].ready()) continue;
      run = suite.plan_final(run, sel[run.variant]);
    }
    if (!Suite::waits_for(run, out_dir).empty()) continue;  // the run it follows did not complete
    // Done only when it ran the planned config (a planned final run's too).
    const std::string conflict = config_conflict(run, out_dir);
    if (!conflict.empty()) throw ConfigError(conflict);
    if (read_run_state(out_dir / run.name).completed()) continue;
    indices.push_back(static_cast<int64_t>(i));
    out.push_back(std::move(run));
  }
  return out;
}

}  // namespace

std::string slurm_script(const Suite& suite, const SuiteOptions& options, int stage, std::vector<int64_t>& indices) {
  auto todo = stage_todo(suite, options.out_dir, stage, indices);
  if (todo.empty()) return "";
  int64_t cpus = options.threads > 0 ? options.threads : 0;
  if (options.threads < 0)
    for (const auto& r : todo) cpus = std::max(cpus, r.config.value("threads", int64_t{0}));
  const fs::path out = fs::absolute(options.out_dir).lexically_normal();
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# Written by `sgs suite`: " << fs::path(suite.path()).filename().string() << ", stage " << stage
    << " of " << suite.stages()
    << (suite.stages() == 1 ? ""
        : !suite.has_search() ? (stage == 1 ? " (the runs that follow none)" : " (the runs that follow a run of stage 1)")
        : stage == 1          ? " (the search runs and the runs that need no search)"
                              : " (final runs of the searched variants)")
    << ",\n# one array task per run not completed yet (" << todo.size() << " of " << suite.runs(stage).size()
    << "). Adapt the #SBATCH lines (partition, time, GPUs) here or\n# with `sgs suite --slurm-args '...'`.\n";
  if (cpus == 0)
    s << "# The runs use every core (threads = 0); pass --threads T to `sgs suite` to match --cpus-per-task.\n";
  s << "#SBATCH --job-name=sgs-" << safe_name(fs::path(suite.path()).stem().string()) << "-" << stage << "\n"
    << "#SBATCH --array=" << array_spec(indices)
    << (options.jobs_given ? "%" + std::to_string(std::max<int64_t>(1, options.jobs)) : "") << "\n"
    << "#SBATCH --cpus-per-task=" << std::max<int64_t>(1, cpus) << "\n"
    << "#SBATCH --output=" << (out / "slurm" / "%A_%a.out").string() << "\n";
  for (const auto& a : options.slurm_args) s << "#SBATCH " << a << "\n";
  s << "exec " << shell_quote(binary_path(options.sgs_binary));
  for (const auto& a : plugin_arguments()) s << " " << shell_quote(a);
  s << " suite "
    << shell_quote(fs::absolute(suite.path()).lexically_normal().string()) << " --out " << shell_quote(out.string())
    << " --stage " << stage << " --index \"$SLURM_ARRAY_TASK_ID\"";
  if (options.threads >= 0) s << " --threads " << options.threads;
  s << "\n";
  return s.str();
}

int run_suite_slurm(const Suite& suite, const SuiteOptions& options) {
  claim_suite_folder(suite, options.out_dir, [&] { check_conflicts(suite.runs(1), options.out_dir); });
  catch_interrupts();
  const fs::path out = options.out_dir;
  std::map<std::string, std::string> out_files;  // run -> its task's output file
  std::set<std::string> before;                  // runs completed before this command
  for (int stage = 1; stage <= suite.stages(); ++stage)
    for (const auto& r : suite.runs(stage))
      if (read_run_state(out / r.name).completed()) before.insert(r.name);
  for (int stage = 1; stage <= suite.stages() && caught_interrupt() == 0; ++stage) {
    std::vector<int64_t> indices;
    if (stage == 2) record_selections(suite, out, std::cerr);
    std::vector<SuiteRun> todo = stage_todo(suite, out, stage, indices);
    if (todo.empty()) continue;
    const std::string script = slurm_script(suite, options, stage, indices);
    const fs::path file = out / "slurm" / ("stage" + std::to_string(stage) + ".sh");
    write_atomically(file, script);
    fs::permissions(file, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec, fs::perm_options::add);
    auto [rc, text] = capture("sbatch --parsable " + shell_quote(file.string()));
    if (rc != 0) throw std::runtime_error("sbatch " + file.string() + " failed: " + trim(text));
    std::string job = trim(text);
    if (auto nl = job.rfind('\n'); nl != std::string::npos) job = job.substr(nl + 1);  // after any warnings
    job = job.substr(0, job.find(';'));
    for (size_t i = 0; i < todo.size(); ++i)
      out_files[todo[i].name] = (out / "slurm" / (job + "_" + std::to_string(indices[i]) + ".out")).string();
    std::fprintf(stderr, "submitted Slurm job %s: stage %d of %d, %zu runs (%s); task output in %s\n", job.c_str(),
                 stage, suite.stages(), todo.size(), file.c_str(), (out / "slurm").c_str());
    bool cancelled = false;
    int empty_polls = 0;
    auto last = Clock::now() - std::chrono::hours(1);
    std::string last_status;
    while (true) {
      if (caught_interrupt() != 0 && !cancelled) {
        cancelled = true;
        std::fprintf(stderr, "sgs suite: %s: cancelling job %s (its runs write a checkpoint and stop)\n",
                     strsignal(caught_interrupt()), job.c_str());
        capture("scancel " + job);
      }
      auto [qrc, queue] = capture("squeue -h -j " + job + " -o %i");
      empty_polls = (qrc != 0 || trim(queue).empty()) ? empty_polls + 1 : 0;
      size_t done = 0, failed = 0, running = 0;
      for (const auto& r : todo) {
        auto st = read_run_state(out / r.name);
        if (st.completed()) ++done;
        else if (st.status == RunStatus::Failed || st.status == RunStatus::Diverged) ++failed;
        else if (st.status == RunStatus::Running) ++running;
      }
      char buf[200];
      std::snprintf(buf, sizeof buf, "job %s: %zu/%zu done, %zu running, %zu failed, %zu pending", job.c_str(), done,
                    todo.size(), running, failed, todo.size() - done - running - failed);
      if (buf != last_status || Clock::now() - last > std::chrono::seconds(60)) {
        std::fprintf(stderr, "%s\n", buf);
        last_status = buf;
        last = Clock::now();
      }
      if (empty_polls >= 2) break;
      for (double t = 0; t < options.poll_seconds && !(caught_interrupt() != 0 && !cancelled); t += 0.1) nap(0.1);
    }
    if (cancelled) break;
  }

  // The report, from the run files.
  std::vector<std::pair<std::string, std::string>> failed, not_run;
  size_t completed = 0, already = 0;
  auto judge = [&](const SuiteRun& r) {
    auto st = read_run_state(out / r.name);
    if (st.completed()) {
      ++completed;
      already += before.count(r.name);
      return;
    }
    std::string where = out_files.count(r.name) ? " (see " + out_files[r.name] + ")" : "";
    if (!st.has_file) not_run.emplace_back(r.name, "did not run" + where);
    else if (st.status == RunStatus::Interrupted || st.status == RunStatus::Running)
      not_run.emplace_back(r.name, st.text() + " (resumes when the suite is run again)" + where);
    else failed.emplace_back(r.name, failure_text(out / r.name, st, "") + where);
  };
  for (const auto& r : suite.runs(1)) judge(r);
  std::map<std::string, Selection> sel;
  for (const auto& r : suite.runs(2)) {
    if (!r.after.empty()) {
      const std::string waits = Suite::waits_for(r, out);
      if (waits.empty() || read_run_state(out / r.name).has_file) judge(r);
      else not_run.emplace_back(r.name, waits);
      continue;
    }
    if (!sel.count(r.variant)) sel[r.variant] = suite.select(r.variant, out);
    if (sel[r.variant].ready()) judge(suite.plan_final(r, sel[r.variant]));
    else not_run.emplace_back(r.name, "waits for its search: " + sel[r.variant].error);
  }
  print_report(std::cout, out, completed + failed.size() + not_run.size(), completed, already, failed, not_run);
  if (caught_interrupt() != 0) return 128 + caught_interrupt();
  return failed.empty() && not_run.empty() ? 0 : 1;
}

}  // namespace sgs
