// Suites, the pieces the others share: the suite file's values, run
// directories (their state, their locks, starting `sgs run` in one),
// conflicts between a plan and what a directory holds, selection files.
#include "app/suite/internal.h"
#include "app/process.h"

#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/run_file.h>
#include <sgs/io.h>
#include <sgs/run_dir.h>
#include <sgs/registry.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace sgs {
namespace suite_detail {

// ---- the suite file ----

Json plain(const Ordered& o) { return Json::parse(o.dump()); }

std::string value_text(const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

std::string assignments_text(const Assignments& a) {
  std::string out;
  for (const auto& [k, v] : a) out += (out.empty() ? "" : " ") + k + "=" + value_text(v);
  return out;
}

Json assignments_object(const Assignments& a) {
  Json o = Json::object();
  for (const auto& [k, v] : a) o[k] = v;
  return o;
}

[[noreturn]] void fail(const std::string& source, const std::string& where, const std::string& what) {
  throw ConfigError(source + ": " + where + ": " + what);
}

void check_keys(const Ordered& obj, const std::string& source, const std::string& where,
                const std::vector<std::string>& known) {
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (std::find(known.begin(), known.end(), it.key()) == known.end())
      fail(source, where.empty() ? it.key() : where + "." + it.key(),
           "unknown key" + did_you_mean(it.key(), known) + " (known: " + join(known, ", ") + ")");
}

Assignments read_set(const Ordered& v, const std::string& source, const std::string& where) {
  if (!v.is_object()) fail(source, where, "expected an object {\"key\": value}, e.g. {\"optimizer.lr\": 0.1}");
  Assignments out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it.key().empty()) fail(source, where, "empty key");
    out.emplace_back(it.key(), plain(it.value()));
  }
  return out;
}

// Characters a run directory name keeps; others become '_'.
bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '+'; }

std::string safe_name(const std::string& s) {
  std::string out = s;
  for (char& c : out)
    if (!name_char(c)) c = '_';
  if (out.empty() || out == "." || out == "..") out = "_" + out;
  return out;
}

// The last component of each key ("strategy.k" -> "k"; a slot's plugin name
// "model.name" -> "model") when it is unique among the axes, else the full key.
std::string axis_label(const std::string& key, const std::vector<std::string>& keys) {
  auto last = [](const std::string& k) {
    auto dot = k.rfind('.');
    if (dot != std::string::npos && k.substr(dot + 1) == "name") return k.substr(0, dot);
    return k.substr(dot + 1);
  };
  int same = 0;
  for (const auto& k : keys) same += last(k) == last(key);
  return same == 1 ? last(key) : key;
}

// Applies one assignment as `sgs run --set` would; a slot given an object is
// replaced by it.
void apply_assignment(Json& raw, const std::string& key, const Json& value) {
  for (const auto& slot : config_slots())
    if (key == slot.key && value.is_object()) {
      raw[key] = value;
      return;
    }
  apply_override(raw, key + "=" + value_text(value));
}

// ---- small file and process helpers ----

void write_atomically(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  write_file_atomically(path, text);
}

FolderLock::FolderLock(const fs::path& out_dir) {
  fs::create_directories(out_dir);
  const fs::path file = out_dir / ".suite.lock";
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw_io_error(file, "cannot open", errno);
  while (::flock(fd_, LOCK_EX) != 0)
    if (errno != EINTR) {
      const int err = errno;
      ::close(fd_);
      throw_io_error(file, "cannot lock", err);
    }
}

FolderLock::~FolderLock() { ::close(fd_); }

std::string last_line(const fs::path& file) {
  std::ifstream in(file);
  std::string line, last;
  while (std::getline(in, line)) {
    auto cr = line.rfind('\r');  // a progress bar's last state
    if (cr != std::string::npos) line = line.substr(cr + 1);
    if (line.find_first_not_of(" \t") != std::string::npos) last = line;
  }
  return last;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string format_seconds(double s) {
  if (!std::isfinite(s) || s < 0) return "-";
  auto t = static_cast<long long>(std::llround(s));
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, t / 60 % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%llds", t);
  return buf;
}

void nap(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

// The run's lock (sgs/run_dir.h) as a descriptor: -1 when another process
// holds it.
int try_lock(const fs::path& run_dir) { return RunDirLock::try_take(run_dir).detach(); }

// Starts `sgs run` for one run: its config in DIR/suite_config.json, output
// to DIR/log.txt, the lock handed to the child.
pid_t launch(const SuiteRun& run, const fs::path& dir, bool fresh, int lock_fd, const std::string& binary) {
  fs::create_directories(dir);
  const fs::path cfg = dir / "suite_config.json";
  write_atomically(cfg, run.config.dump(2) + "\n");
  int log = open((dir / "log.txt").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (fresh ? O_TRUNC : O_APPEND), 0644);
  if (log < 0) throw std::runtime_error((dir / "log.txt").string() + ": cannot open: " + std::strerror(errno));
  std::string header = "== sgs suite " + utc_now() + ": " + (fresh ? "start " : "resume ") + run.name + "\n";
  if (write(log, header.data(), header.size()) < 0) { /* the log is informative only */ }
  ChildSpec child;
  child.binary = binary;
  child.argv = {"sgs"};
  for (const auto& a : plugin_arguments()) child.argv.push_back(a);  // the plugins this suite loaded
  child.argv.insert(child.argv.end(), {"run", cfg.string(), "--out", dir.string(), "--progress", "lines"});
  if (!fresh) child.argv.push_back("--resume");
  // The child adopts the lock held on lock_fd rather than taking its own, and
  // holds it until it exits.
  child.env = {{RunDirLock::kLockFdVariable, std::to_string(lock_fd)}};
  child.inherit_fd = lock_fd;
  child.output_fd = log;
  child.null_stdin = true;
  child.exec_failed = "sgs suite: cannot execute " + binary + "\n";
  pid_t pid = -1;
  try {
    pid = spawn(child);
  } catch (...) {
    close(log);
    throw;
  }
  close(log);
  return pid;
}

// Why a run did not complete, from its run.h5 and its log.
std::string failure_text(const fs::path& dir, const RunState& state, const std::string& how) {
  std::string what = !state.has_file ? "no run.h5" : state.text();
  std::string why = state.error.empty() ? last_line(dir / "log.txt") : state.error;
  return what + (how.empty() ? "" : " (" + how + ")") + (why.empty() ? "" : ": " + why);
}

std::string first_difference(const Json& a, const Json& b) {
  auto patch = Json::diff(a, b);
  if (patch.empty()) return "";
  std::string path = patch[0].value("path", "");
  if (path.size() >= 2 && path.compare(path.size() - 2, 2, "/-") == 0) path.resize(path.size() - 2);  // an element added at the end
  std::replace(path.begin(), path.end(), '/', '.');
  return path.empty() ? "" : path.substr(1);
}

// A run directory that holds a run of another config is never resumed or
// skipped (the suite or --threads changed since it ran), and a completed run
// counts as done only when its config.json shows it is the planned one.
std::string config_conflict(const SuiteRun& run, const fs::path& out_dir) {
  const fs::path file = out_dir / run.name / "config.json";
  if (run.config.is_null()) return "";
  const bool completed = read_run_state(out_dir / run.name).completed();
  if (!fs::exists(file))
    return completed ? file.string() + ": missing, so the completed run there cannot be told to be the one the suite "
                                       "plans; restore it, or remove that directory to redo the run"
                     : "";
  Json previous;
  try {
    previous = read_json_file(file.string());
  } catch (const ConfigError& e) {
    if (completed)
      return std::string(e.what()) + ": the completed run there cannot be told to be the one the suite plans; "
                                     "restore it, or remove that directory to redo the run";
    return "";  // an unfinished run: redone from scratch
  }
  if (same_run_config(previous, run.config)) return "";
  return file.string() + ": the run there has another config than the suite plans (first difference: " +
         first_difference(previous, run.config) +
         "); the suite file or --threads changed since: remove that directory to redo the run, or use another --out";
}

void check_conflicts(const std::vector<SuiteRun>& runs, const fs::path& out_dir) {
  std::vector<std::string> errors;
  for (const auto& r : runs) {
    auto e = config_conflict(r, out_dir);
    if (!e.empty()) errors.push_back(e);
  }
  if (errors.empty()) return;
  throw ConfigError(errors[0] + (errors.size() > 1 ? " (and " + std::to_string(errors.size() - 1) + " more runs)" : ""));
}

void write_selections(const Suite& suite, const std::vector<Selection>& selections, const fs::path& out_dir) {
  FolderLock lock(out_dir);  // read, update, write: another process of the suite may do the same
  const fs::path file = out_dir / "selection.json";
  Json all = Json::object();
  if (fs::exists(file)) {
    try {
      all = read_json_file(file.string());
    } catch (const ConfigError&) {
      all = Json::object();
    }
  }
  for (const auto& s : selections) all[s.variant] = s.to_json(suite.search_metric());
  write_atomically(file, all.dump(2) + "\n");
}

std::string selection_text(const Suite& suite, const Selection& s) {
  std::ostringstream out;
  out << "search '" << s.variant << "': ";
  if (!s.ready()) {
    out << "nothing chosen: " << s.error;
    return out.str();
  }
  out << assignments_text(s.candidates[static_cast<size_t>(s.chosen)].values) << " chosen (mean " << suite.search_metric()
      << " ";
  bool same_runs = true;
  for (size_t i = 0; i < s.candidates.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, ": %.4f", s.candidates[i].mean);
    out << (i > 0 ? ", " : "") << assignments_text(s.candidates[i].values) << buf;
    same_runs = same_runs && s.candidates[i].runs == s.candidates[0].runs;
  }
  if (same_runs) out << "; " << s.candidates[0].runs << (s.candidates[0].runs == 1 ? " run" : " runs") << " each";
  out << ")";
  return out.str();
}

void print_report(std::ostream& out, const fs::path& dir, size_t total, size_t completed, size_t already,
                  const std::vector<std::pair<std::string, std::string>>& failed,
                  const std::vector<std::pair<std::string, std::string>>& not_run) {
  out << "suite " << dir.string() << ": " << total << " runs, " << completed << " completed";
  if (already > 0) out << " (" << already << " before this command)";
  if (!failed.empty()) out << ", " << failed.size() << " failed";
  if (!not_run.empty()) out << ", " << not_run.size() << " not run";
  out << "\n";
  for (const auto& [name, why] : failed) out << "  failed   " << name << ": " << why << "\n";
  // Runs not run for the same reason (not started, waiting for one search) share a line.
  std::vector<std::pair<std::string, std::vector<std::string>>> reasons;
  for (const auto& [name, why] : not_run) {
    auto it = std::find_if(reasons.begin(), reasons.end(), [&](const auto& r) { return r.first == why; });
    if (it == reasons.end()) reasons.push_back({why, {name}});
    else it->second.push_back(name);
  }
  for (const auto& [why, names] : reasons)
    out << "  not run  " << names[0]
        << (names.size() > 1 ? " and " + std::to_string(names.size() - 1) + " more" : std::string()) << ": " << why << "\n";
  out.flush();
}

}  // namespace suite_detail

using namespace suite_detail;

void check_suite_conflicts(const Suite& suite, const fs::path& out_dir) { check_conflicts(suite.runs(1), out_dir); }

// ---- RunState, Selection ----

RunState read_run_state(const fs::path& run_dir) {
  RunState s;
  s.checkpoint = fs::exists(run_dir / "checkpoint.pt");
  const fs::path file = run_dir / "run.h5";
  if (!fs::exists(file)) return s;
  s.has_file = true;
  try {
    RunFile f = read_run_file(file.string(), kRunAttributes);
    s.status = f.status;
    s.error = f.error;
    s.run_id = f.run_id;
    if (!s.status)
      s.error = file.string() + ": " +
                (f.status_recorded.empty() ? "no status attribute" : "unknown status '" + f.status_recorded + "'");
  } catch (const DataError& e) {
    s.error = e.what();
  }
  return s;
}

Json Selection::to_json(const std::string& metric) const {
  Json c = Json::array();
  for (const auto& k : candidates)
    c.push_back({{"values", assignments_object(k.values)}, {"mean", k.mean}, {"runs", k.runs}});
  Json out{{"over", over}, {"metric", metric}, {"candidates", c}};
  out["chosen"] = ready() ? assignments_object(candidates[static_cast<size_t>(chosen)].values) : Json(nullptr);
  if (!incomplete.empty()) out["incomplete"] = incomplete;
  if (!error.empty()) out["error"] = error;
  return out;
}

}  // namespace sgs
