// Suites: expansion of a suite file into runs, the search's selection rule,
// and running the runs as `sgs run` child processes (locally, or as a Slurm
// job array). The state of a suite is its run directories: each run's run.h5
// says whether it completed, and a lock file (flock, held by the process that
// runs it) says whether someone runs it now.
#include <sgs/config.h>
#include <sgs/errors.h>
#include <sgs/h5_access.h>
#include <sgs/io.h>
#include <sgs/run_dir.h>
#include <sgs/run_log.h>
#include <sgs/registry.h>
#include <sgs/suite.h>

#include <H5Cpp.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace sgs {

namespace fs = std::filesystem;
using Ordered = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

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

template <class Axis>
std::vector<Assignments> product(const std::vector<Axis>& axes) {
  std::vector<Assignments> out{{}};
  for (const auto& axis : axes) {
    std::vector<Assignments> next;
    for (const auto& partial : out)
      for (const auto& v : axis.values) {
        auto a = partial;
        a.emplace_back(axis.key, v);
        next.push_back(std::move(a));
      }
    out = std::move(next);
  }
  return out;
}

// ---- small file and process helpers ----

void write_atomically(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  write_file_atomically(path, text);
}

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

volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_suite_signal(int sig) { g_signal = sig; }

void install_suite_handlers() {
  g_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = on_suite_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

void nap(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

// The run's lock (sgs/run_dir.h) as a descriptor: -1 when another process
// holds it.
int try_lock(const fs::path& run_dir) { return RunDirLock::try_take(run_dir).detach(); }

bool locked_elsewhere(const fs::path& run_dir) { return run_dir_locked_elsewhere(run_dir); }

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
  std::vector<std::string> args{"sgs"};
  for (const auto& a : plugin_arguments()) args.push_back(a);  // the plugins this suite loaded
  args.insert(args.end(), {"run", cfg.string(), "--out", dir.string(), "--progress", "lines"});
  if (!fresh) args.push_back("--resume");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The child adopts the lock held on lock_fd rather than taking its own.
  std::vector<std::string> env_text{std::string(RunDirLock::kLockFdVariable) + "=" + std::to_string(lock_fd)};
  for (char** e = environ; *e != nullptr; ++e)
    if (std::string(*e).rfind(std::string(RunDirLock::kLockFdVariable) + "=", 0) != 0) env_text.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string failed = "sgs suite: cannot execute " + binary + "\n";
  pid_t pid = fork();
  if (pid == 0) {
    dup2(log, 1);
    dup2(log, 2);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    fcntl(lock_fd, F_SETFD, 0);  // the child holds the run's lock until it exits
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(binary.c_str(), argv.data(), envp.data());
    if (write(2, failed.data(), failed.size()) < 0) {}
    _exit(127);
  }
  int err = errno;
  close(log);
  if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(err));
  return pid;
}

std::string describe_exit(int wait_status) {
  if (WIFEXITED(wait_status)) return "exit " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status))
    return std::string("killed by signal ") + std::to_string(WTERMSIG(wait_status)) + " (" +
           strsignal(WTERMSIG(wait_status)) + ")";
  return "status " + std::to_string(wait_status);
}

// Why a run did not complete, from its run.h5 and its log.
std::string failure_text(const fs::path& dir, const RunState& state, const std::string& how) {
  std::string what = state.status.empty() ? "no run.h5" : state.status;
  std::string why = state.error.empty() ? last_line(dir / "log.txt") : state.error;
  return what + (how.empty() ? "" : " (" + how + ")") + (why.empty() ? "" : ": " + why);
}

std::string first_difference(const Json& a, const Json& b) {
  auto patch = Json::diff(a, b);
  if (patch.empty()) return "";
  std::string path = patch[0].value("path", "");
  std::replace(path.begin(), path.end(), '/', '.');
  return path.empty() ? "" : path.substr(1);
}

// A run directory that holds a run of another config is never resumed or
// skipped: the suite (or --threads) changed since it ran.
std::string config_conflict(const SuiteRun& run, const fs::path& out_dir) {
  const fs::path file = out_dir / run.name / "config.json";
  if (run.config.is_null() || !fs::exists(file)) return "";
  Json previous;
  try {
    previous = read_json_file(file.string());
  } catch (const ConfigError&) {
    return "";  // unreadable: the run is redone from scratch anyway
  }
  if (previous == run.config) return "";
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

}  // namespace

// ---- RunState, Selection ----

RunState read_run_state(const fs::path& run_dir) {
  RunState s;
  s.checkpoint = fs::exists(run_dir / "checkpoint.pt");
  const fs::path file = run_dir / "run.h5";
  if (!fs::exists(file)) return s;
  H5::Exception::dontPrint();
  try {
    H5::H5File f(file.string(), H5F_ACC_RDONLY, H5::FileCreatPropList::DEFAULT, h5_access_without_lock());
    auto attr = [&](const char* name) {
      std::string v;
      if (!f.attrExists(name)) return v;
      auto a = f.openAttribute(name);
      a.read(a.getStrType(), v);
      return v;
    };
    s.status = attr("status");
    s.error = attr("error");
    s.created = attr("created");
    if (s.status.empty()) {
      s.status = "unreadable";
      s.error = file.string() + ": no status attribute";
    }
  } catch (const H5::Exception& e) {
    s.status = "unreadable";
    s.error = file.string() + ": " + e.getDetailMsg();
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

// ---- Suite ----

Suite Suite::load(const std::string& path, const Assignments& extra) {
  Suite s;
  s.path_ = path;
  s.extra_ = extra;
  {
    std::ifstream in(path);
    if (!in) throw ConfigError(path + ": cannot open the file");
    std::stringstream text;
    text << in.rdbuf();
    s.spec_ = parse_ordered_json_text(text.str(), path);
  }
  const Ordered& spec = s.spec_;
  if (!spec.is_object()) throw ConfigError(path + ": expected a JSON object at the top level");
  check_keys(spec, path, "", {"description", "base", "set", "axes", "variants", "search"});
  if (spec.contains("description") && !spec["description"].is_string())
    fail(path, "description", "expected a string");

  // base: a config file (relative to the suite file) or an inline config.
  if (!spec.contains("base")) fail(path, "base", "missing (a config file, relative to the suite file, or a config object)");
  if (spec["base"].is_string()) {
    fs::path base = spec["base"].get<std::string>();
    if (base.is_relative()) base = fs::path(path).parent_path() / base;
    try {
      s.base_ = read_json_file(base.string());
    } catch (const ConfigError& e) {
      fail(path, "base", e.what());
    }
    if (!s.base_.is_object()) fail(path, "base", base.string() + ": expected a JSON object");
  } else if (spec["base"].is_object()) {
    s.base_ = plain(spec["base"]);
  } else {
    fail(path, "base", "expected a config file name or a config object");
  }

  auto read_axes = [&](const Ordered& v, const std::string& where) {
    if (!v.is_object()) fail(path, where, "expected an object {\"key\": [values]}, e.g. {\"seed\": [0, 1, 2]}");
    std::vector<Axis> axes;
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string w = where + "." + it.key();
      if (it.key().empty()) fail(path, where, "empty key");
      if (!it.value().is_array()) fail(path, w, "expected a list of values");
      if (it.value().empty()) fail(path, w, "no values");
      Axis a{it.key(), {}};
      for (size_t i = 0; i < it.value().size(); ++i) {
        const auto& x = it.value()[i];
        if (!x.is_string() && !x.is_number() && !x.is_boolean())
          fail(path, w + "[" + std::to_string(i) + "]", "expected a string, number or bool");
        Json value = plain(x);
        for (const auto& seen : a.values)
          if (seen == value) fail(path, w, "the value " + value.dump() + " is given twice");
        a.values.push_back(value);
      }
      axes.push_back(std::move(a));
    }
    return axes;
  };
  // Axes of `first`, then those of `second` not already there.
  auto merge = [](std::vector<Axis> first, const std::vector<Axis>& second) {
    for (const auto& a : second)
      if (std::none_of(first.begin(), first.end(), [&](const Axis& b) { return b.key == a.key; })) first.push_back(a);
    return first;
  };

  if (spec.contains("set")) s.common_ = read_set(spec["set"], path, "set");
  std::vector<Axis> suite_axes;
  if (spec.contains("axes")) suite_axes = read_axes(spec["axes"], "axes");

  if (spec.contains("variants")) {
    const auto& vs = spec["variants"];
    if (!vs.is_array()) fail(path, "variants", "expected a list of {\"name\": ..., \"set\": {...}, \"axes\": {...}}");
    if (vs.empty()) fail(path, "variants", "no variants (leave the key out for a single one)");
    s.named_variants_ = true;
    std::set<std::string> names;
    for (size_t i = 0; i < vs.size(); ++i) {
      const std::string where = "variants[" + std::to_string(i) + "]";
      const auto& v = vs[i];
      if (!v.is_object()) fail(path, where, "expected an object {\"name\": ..., \"set\": {...}, \"axes\": {...}}");
      check_keys(v, path, where, {"name", "description", "set", "axes"});
      if (!v.contains("name") || !v["name"].is_string() || v["name"].get<std::string>().empty())
        fail(path, where + ".name", "missing (a name for the variant's run directories)");
      Variant var;
      var.name = v["name"].get<std::string>();
      var.where = where;
      if (!std::all_of(var.name.begin(), var.name.end(), name_char) || var.name == "." || var.name == "..")
        fail(path, where + ".name", "'" + var.name + "': use letters, digits and . _ - + (it names directories)");
      if (!names.insert(var.name).second) fail(path, where + ".name", "'" + var.name + "' is used twice");
      if (v.contains("set")) var.set = read_set(v["set"], path, where + ".set");
      std::vector<Axis> own;
      if (v.contains("axes")) own = read_axes(v["axes"], where + ".axes");
      var.axes = merge(own, suite_axes);
      s.variants_.push_back(std::move(var));
    }
  } else {
    Variant var;
    var.axes = suite_axes;
    s.variants_.push_back(std::move(var));
  }

  if (spec.contains("search")) {
    const auto& se = spec["search"];
    if (!se.is_object()) fail(path, "search", "expected an object {\"over\": [...], \"metric\": ..., ...}");
    check_keys(se, path, "search", {"over", "metric", "set", "final"});
    s.search_.present = true;
    if (!se.contains("over")) fail(path, "search.over", "missing (the axes to choose, e.g. [\"strategy.k\"])");
    const auto& over = se["over"];
    if (over.is_string()) {
      s.search_.over.push_back(over.get<std::string>());
    } else if (over.is_array() && !over.empty()) {
      for (const auto& k : over) {
        if (!k.is_string()) fail(path, "search.over", "expected a list of axis keys");
        s.search_.over.push_back(k.get<std::string>());
      }
    } else {
      fail(path, "search.over", "expected a non-empty list of axis keys");
    }
    if (se.contains("metric")) {
      const std::vector<std::string> metrics{"val_acc", "best_val_acc"};
      if (!se["metric"].is_string() ||
          std::find(metrics.begin(), metrics.end(), se["metric"].get<std::string>()) == metrics.end())
        fail(path, "search.metric", "expected one of " + join(metrics, ", ") + ", got " + se["metric"].dump());
      s.search_.metric = se["metric"].get<std::string>();
    }
    if (se.contains("set")) s.search_.set = read_set(se["set"], path, "search.set");
    if (se.contains("final")) {
      const auto& fi = se["final"];
      if (!fi.is_object()) fail(path, "search.final", "expected an object {\"set\": {...}, \"axes\": {...}}");
      check_keys(fi, path, "search.final", {"set", "axes"});
      if (fi.contains("set")) s.search_.final_set = read_set(fi["set"], path, "search.final.set");
      if (fi.contains("axes")) s.search_.final_axes = read_axes(fi["axes"], "search.final.axes");
    }
    bool any = false;
    for (auto& v : s.variants_) {
      for (const auto& k : s.search_.over)
        if (std::any_of(v.axes.begin(), v.axes.end(), [&](const Axis& a) { return a.key == k; })) v.over.push_back(k);
      v.searched = !v.over.empty();
      any = any || v.searched;
    }
    if (!any) fail(path, "search.over", "'" + s.search_.over[0] + "' is not an axis of any variant");
  }

  // Expansion: every run's config is resolved now (and every candidate final
  // run's), so that nothing runs when any is invalid.
  std::set<std::string> names;
  auto add = [&](std::vector<SuiteRun>& to, SuiteRun run) {
    if (!names.insert(run.name).second)
      throw ConfigError(path + ": two runs are named '" + run.name +
                        "' (values that differ only in characters a directory name cannot hold?)");
    to.push_back(std::move(run));
  };
  for (const auto& v : s.variants_) {
    if (!s.search_.present) {
      for (const auto& values : product(v.axes)) add(s.stage1_, s.make_run(v, "", 1, v.axes, values, {}, true));
    } else if (!v.searched) {
      auto axes = s.final_axes(v);
      for (const auto& values : product(axes)) add(s.stage1_, s.make_run(v, "final", 1, axes, values, {}, true));
    } else {
      for (const auto& values : product(v.axes)) add(s.stage1_, s.make_run(v, "search", 1, v.axes, values, {}, true));
    }
  }
  for (const auto& v : s.variants_) {
    if (!v.searched) continue;
    std::vector<Axis> over_axes;
    for (const auto& a : v.axes)
      if (std::find(v.over.begin(), v.over.end(), a.key) != v.over.end()) over_axes.push_back(a);
    auto axes = s.final_axes(v);
    for (const auto& values : product(axes)) {
      for (const auto& chosen : product(over_axes)) s.make_run(v, "final", 2, axes, values, chosen, true);
      add(s.stage2_, s.make_run(v, "final", 2, axes, values, {}, false));
    }
  }
  return s;
}

std::vector<Suite::Axis> Suite::final_axes(const Variant& v) const {
  std::vector<Axis> axes;
  for (const auto& a : v.axes)
    if (std::find(v.over.begin(), v.over.end(), a.key) == v.over.end()) axes.push_back(a);
  for (const auto& f : search_.final_axes) {
    auto it = std::find_if(axes.begin(), axes.end(), [&](const Axis& a) { return a.key == f.key; });
    if (it != axes.end()) *it = f;
    else axes.push_back(f);
  }
  return axes;
}

SuiteRun Suite::make_run(const Variant& v, const std::string& phase, int stage, const std::vector<Axis>& axes,
                         const Assignments& values, const Assignments& chosen, bool resolve) const {
  SuiteRun run;
  run.stage = stage;
  run.phase = phase;
  run.variant = v.name;
  run.values = values;
  run.chosen = chosen;
  std::vector<std::string> keys;
  for (const auto& a : axes) keys.push_back(a.key);
  std::string component;
  for (const auto& [k, x] : values)
    component += (component.empty() ? "" : ",") + axis_label(k, keys) + "=" + safe_name(value_text(x));
  for (const auto& part : {phase, v.name, component})
    if (!part.empty()) run.name += (run.name.empty() ? "" : "/") + part;
  if (run.name.empty()) run.name = "run";

  // Each group of assignments with where it comes from, for messages.
  const std::string stage_where = phase == "search" ? "search.set" : "search.final.set";
  const Assignments& stage_set = phase == "search" ? search_.set : search_.final_set;
  std::vector<std::pair<std::string, const Assignments*>> groups{
      {v.where.empty() ? "set" : v.where + ".set", &v.set},
      {stage_where, phase.empty() ? nullptr : &stage_set},
      {"search.over (the chosen value)", &chosen},
      {"axes", &values},
  };
  for (const auto& [where, group] : groups)
    if (group != nullptr) run.overrides.insert(run.overrides.end(), group->begin(), group->end());
  if (!resolve) return run;

  Json raw = base_;
  auto apply = [&](const std::string& where, const Assignments& group) {
    for (const auto& [k, x] : group) {
      try {
        apply_assignment(raw, k, x);
      } catch (const ConfigError& e) {
        throw ConfigError(path_ + ": " + run.name + ": " + where + ": " + e.what());
      }
    }
  };
  apply("set", common_);
  for (const auto& [where, group] : groups)
    if (group != nullptr) apply(where, *group);
  apply("command line", extra_);
  run.config = resolve_config(raw, path_ + ": " + run.name);
  if (phase == "search") {
    // The search ranks runs by a validation metric: refuse, before anything
    // trains, a search run that would have none.
    const Json& ds = run.config["dataset"];
    const std::string evaluate = run.config["evaluate"].get<std::string>();
    const bool val_split =
        ds.contains("val_fraction") && ds["val_fraction"].is_number() && ds["val_fraction"].get<double>() > 0;
    if (!val_split)
      throw ConfigError(path_ + ": " + run.name + ": search.metric '" + search_.metric +
                        "' needs a validation split, but dataset.val_fraction is 0 "
                        "(set it for the search: \"search\": {\"set\": {\"dataset.val_fraction\": 0.1}})");
    if (evaluate == "test" || evaluate == "none")
      throw ConfigError(path_ + ": " + run.name + ": search.metric '" + search_.metric +
                        "' needs evaluate to include val, got '" + evaluate + "'");
  }
  return run;
}

const Suite::Variant& Suite::variant(const std::string& name) const {
  for (const auto& v : variants_)
    if (v.name == name) return v;
  throw std::invalid_argument("suite: no variant '" + name + "'");
}

std::vector<std::string> Suite::searched_variants() const {
  std::vector<std::string> out;
  for (const auto& v : variants_)
    if (v.searched) out.push_back(v.name);
  return out;
}

std::vector<size_t> Suite::search_runs(const std::string& name) const {
  std::vector<size_t> out;
  for (size_t i = 0; i < stage1_.size(); ++i)
    if (stage1_[i].phase == "search" && stage1_[i].variant == name) out.push_back(i);
  return out;
}

Selection Suite::select(const std::string& name, const fs::path& out_dir) const {
  const Variant& v = variant(name);
  Selection sel;
  sel.variant = name;
  sel.over = v.over;
  std::vector<Axis> over_axes;
  for (const auto& a : v.axes)
    if (std::find(v.over.begin(), v.over.end(), a.key) != v.over.end()) over_axes.push_back(a);
  for (const auto& values : product(over_axes)) sel.candidates.push_back({values, 0.0, 0});
  const std::string key = search_.metric == "val_acc" ? "final_val_acc" : search_.metric;
  std::vector<double> sums(sel.candidates.size(), 0.0);
  for (size_t i : search_runs(name)) {
    const SuiteRun& run = stage1_[i];
    const fs::path dir = out_dir / run.name;
    if (!read_run_state(dir).completed()) {
      sel.incomplete.push_back(run.name);
      continue;
    }
    double value = NAN;
    try {
      auto summary = RunLog::read_summary((dir / "run.h5").string());
      if (summary.count(key)) value = summary.at(key);
    } catch (const std::exception& e) {
      sel.error = e.what();
      return sel;
    }
    if (!std::isfinite(value)) {
      sel.error = run.name + ": its run.h5 has no " + key +
                  " (a search needs a validation split: \"search\": {\"set\": {\"dataset.val_fraction\": 0.2}})";
      return sel;
    }
    for (size_t c = 0; c < sel.candidates.size(); ++c) {
      bool match = true;
      for (const auto& [k, x] : sel.candidates[c].values)
        for (const auto& [rk, rx] : run.values)
          if (rk == k && rx != x) match = false;
      if (match) {
        sums[c] += value;
        sel.candidates[c].runs += 1;
      }
    }
  }
  if (!sel.incomplete.empty()) {
    sel.error = std::to_string(sel.incomplete.size()) + " of its search runs are not completed (" +
                sel.incomplete[0] + (sel.incomplete.size() > 1 ? ", ..." : "") + ")";
    return sel;
  }
  for (size_t c = 0; c < sel.candidates.size(); ++c) {
    auto& cand = sel.candidates[c];
    cand.mean = cand.runs > 0 ? sums[c] / static_cast<double>(cand.runs) : NAN;
    if (cand.runs > 0 && (sel.chosen < 0 || cand.mean > sel.candidates[static_cast<size_t>(sel.chosen)].mean))
      sel.chosen = static_cast<int64_t>(c);  // strictly better: ties go to the first in axis order
  }
  return sel;
}

SuiteRun Suite::plan_final(const SuiteRun& run, const Selection& selection) const {
  if (!selection.ready()) throw std::runtime_error(run.name + ": cannot be planned: " + selection.error);
  const Variant& v = variant(run.variant);
  return make_run(v, "final", 2, final_axes(v), run.values, selection.candidates[static_cast<size_t>(selection.chosen)].values,
                  true);
}

Ordered Suite::resolved_json() const {
  Ordered out = spec_;
  out["base"] = Ordered::parse(base_.dump());
  out["source"] = fs::absolute(path_).lexically_normal().string();
  if (!extra_.empty()) out["command_line"] = Ordered::parse(assignments_object(extra_).dump());
  return out;
}

Json Suite::plan_json() const {
  Json runs = Json::array();
  for (int stage = 1; stage <= 2; ++stage) {
    const auto& list = this->runs(stage);
    for (size_t i = 0; i < list.size(); ++i) {
      const auto& r = list[i];
      Json o{{"stage", stage}, {"index", i}, {"name", r.name}, {"phase", r.phase}, {"variant", r.variant},
             {"values", assignments_object(r.values)}, {"overrides", assignments_text(r.overrides)}};
      runs.push_back(o);
    }
  }
  return Json{{"suite", fs::absolute(path_).lexically_normal().string()},
              {"stages", stages()},
              {"common", assignments_text(common_)},
              {"runs", runs}};
}

void write_suite_files(const Suite& suite, const fs::path& out_dir) {
  write_atomically(out_dir / "suite.json", suite.resolved_json().dump(2) + "\n");
  write_atomically(out_dir / "plan.json", suite.plan_json().dump(2) + "\n");
}

std::vector<Selection> record_selections(const Suite& suite, const fs::path& out_dir, std::ostream& log) {
  std::vector<Selection> all, ready;
  for (const auto& v : suite.searched_variants()) {
    all.push_back(suite.select(v, out_dir));
    if (all.back().ready()) ready.push_back(all.back());
    log << selection_text(suite, all.back()) << "\n";
  }
  if (!ready.empty()) write_selections(suite, ready, out_dir);
  return all;
}

int current_stage(const Suite& suite, const fs::path& out_dir) {
  for (int stage = 1; stage <= suite.stages(); ++stage)
    for (const auto& r : suite.runs(stage))
      if (!read_run_state(out_dir / r.name).completed()) return stage;
  return 0;
}

// ---- --dry-run ----

void print_suite_plan(const Suite& suite, const fs::path& out_dir, std::ostream& out) {
  const size_t n1 = suite.runs(1).size(), n2 = suite.runs(2).size();
  out << "suite " << suite.path() << ": " << n1 + n2 << " runs";
  if (suite.stages() == 2) out << " in 2 stages (" << n1 << " + " << n2 << ")";
  out << ", output " << out_dir.string() << "\n";
  Assignments every = suite.common();
  every.insert(every.end(), suite.extra().begin(), suite.extra().end());
  if (!every.empty()) out << "every run: " << assignments_text(every) << "\n";
  bool conflicts = false;
  std::map<std::string, Selection> selections;
  std::vector<std::string> order = suite.searched_variants();
  for (const auto& v : order) selections[v] = suite.select(v, out_dir);
  for (int stage = 1; stage <= suite.stages(); ++stage) {
    if (suite.stages() == 2)
      out << (stage == 1 ? "stage 1: the search runs, and the runs of variants without a search\n"
                         : "stage 2: the final runs of searched variants, once their search is complete\n");
    struct Row {
      std::string index, name, status, overrides;
    };
    std::vector<Row> rows;
    size_t wn = 4, ws = 6;
    const auto& list = suite.runs(stage);
    for (size_t i = 0; i < list.size(); ++i) {
      SuiteRun run = list[i];
      std::string status;
      if (stage == 2) {
        const auto& sel = selections.at(run.variant);
        if (sel.ready()) run = suite.plan_final(run, sel);
        else status = "waiting for the search";
      }
      if (status.empty()) {
        auto st = read_run_state(out_dir / run.name);
        status = st.status.empty() ? "new"
                 : st.completed()  ? "completed"
                 : st.fresh()      ? "redo (" + st.status + ")"
                                   : "resume (" + st.status + ")";
        if (locked_elsewhere(out_dir / run.name)) status = "running now";
        if (!config_conflict(run, out_dir).empty()) {
          status = "another config";
          conflicts = true;
        }
      }
      std::string overrides = assignments_text(run.overrides);
      if (!run.chosen.empty()) overrides += "  (chosen: " + assignments_text(run.chosen) + ")";
      rows.push_back({std::to_string(i), run.name, status, overrides});
      wn = std::max(wn, run.name.size());
      ws = std::max(ws, status.size());
    }
    auto pad = [](const std::string& s, size_t w) { return s + std::string(w > s.size() ? w - s.size() : 0, ' '); };
    out << "  " << pad("#", 4) << pad("run", wn + 2) << pad("status", ws + 2) << "overrides\n";
    for (const auto& r : rows) out << "  " << pad(r.index, 4) << pad(r.name, wn + 2) << pad(r.status, ws + 2) << r.overrides << "\n";
  }
  for (const auto& v : order) out << selection_text(suite, selections.at(v)) << "\n";
  if (conflicts)
    out << "'another config': the directory holds a run of another config (the suite or --threads changed); "
           "the suite does not run until it is removed\n";
}

// ---- running locally ----

namespace {

class LocalRunner {
 public:
  LocalRunner(const Suite& suite, const SuiteOptions& options) : suite_(suite), o_(options) {
    tty_ = isatty(STDERR_FILENO) != 0;
  }

  int run() {
    for (const auto& r : suite_.runs(1)) add(r);
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
      if (g_signal != 0 && forwarded != g_signal) {
        forwarded = g_signal;
        clear_status();
        std::fprintf(stderr, "sgs suite: %s: stopping; the running runs write a checkpoint and stop\n",
                     strsignal(forwarded));
        for (auto& e : entries_)
          if (e.state == State::Running) kill(e.pid, forwarded);
      }
      for (size_t i = 0; i < entries_.size(); ++i) reap(entries_[i]);  // reap may add final runs
      if (g_signal == 0) launch_pending();
      size_t running = count(State::Running), pending = count(State::Pending) + count(State::Elsewhere);
      if (running == 0 && (pending == 0 || g_signal != 0)) break;
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
  enum class State { Pending, Running, Done, Already, Failed, Elsewhere, Interrupted };
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
    } else if (read_run_state(o_.out_dir / run.name).completed() && !locked_elsewhere(o_.out_dir / run.name)) {
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
      int lock = try_lock(dir(e));
      if (lock < 0) {
        if (e.state == State::Pending) event("running elsewhere, waiting for it: " + e.run.name);
        e.state = State::Elsewhere;
        e.start = Clock::now();
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
        e.pid = launch(e.run, dir(e), st.fresh() || st.status.empty(), lock, o_.sgs_binary);
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
    } else if (g_signal != 0 && !st.fresh()) {  // stopped by the signal we forwarded
      e.state = State::Interrupted;
      event("interrupted " + e.run.name + (st.status == "interrupted" ? " (checkpoint written)" : ""));
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
    }
    for (const auto& [v, n] : waiting_)
      if (!planned_.count(v) && n > 0) {
        Selection sel = suite_.select(v, o_.out_dir);
        for (const auto& r : suite_.runs(2))
          if (r.variant == v) not_run.emplace_back(r.name, "waits for its search: " + sel.error);
      }
    size_t total = completed + failed.size() + not_run.size();
    print_report(std::cout, o_.out_dir, total, completed, already, failed, not_run);
    if (g_signal != 0) return 128 + g_signal;
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
  check_conflicts(suite.runs(1), options.out_dir);
  write_suite_files(suite, options.out_dir);
  install_suite_handlers();
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
  SuiteRun run = list[static_cast<size_t>(index)];
  if (stage == 2) run = suite.plan_final(run, suite.select(run.variant, options.out_dir));
  auto conflict = config_conflict(run, options.out_dir);
  if (!conflict.empty()) throw ConfigError(conflict);
  const fs::path dir = options.out_dir / run.name;
  std::fprintf(stderr, "sgs suite: stage %d run %lld: %s\n", stage, static_cast<long long>(index), run.name.c_str());
  int lock = try_lock(dir);
  if (lock < 0) throw std::runtime_error(run.name + ": another process is running it now");
  RunState st = read_run_state(dir);
  if (st.completed()) {
    close(lock);
    std::fprintf(stderr, "%s: already completed\n", run.name.c_str());
    return 0;
  }
  install_suite_handlers();
  const bool fresh = st.fresh() || st.status.empty();
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
    if (g_signal != 0 && forwarded != g_signal) {
      forwarded = g_signal;
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
  if (g_signal != 0) return 128 + g_signal;
  return 1;
}

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
    if (stage == 2) {
      if (!sel.count(run.variant)) sel[run.variant] = suite.select(run.variant, out_dir);
      if (!sel[run.variant].ready()) continue;
      run = suite.plan_final(run, sel[run.variant]);
    }
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
        : stage == 1        ? " (the search runs and the runs that need no search)"
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
  check_conflicts(suite.runs(1), options.out_dir);
  write_suite_files(suite, options.out_dir);
  install_suite_handlers();
  const fs::path out = options.out_dir;
  std::map<std::string, std::string> out_files;  // run -> its task's output file
  std::set<std::string> before;                  // runs completed before this command
  for (int stage = 1; stage <= suite.stages(); ++stage)
    for (const auto& r : suite.runs(stage))
      if (read_run_state(out / r.name).completed()) before.insert(r.name);
  for (int stage = 1; stage <= suite.stages() && g_signal == 0; ++stage) {
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
      if (g_signal != 0 && !cancelled) {
        cancelled = true;
        std::fprintf(stderr, "sgs suite: %s: cancelling job %s (its runs write a checkpoint and stop)\n",
                     strsignal(g_signal), job.c_str());
        capture("scancel " + job);
      }
      auto [qrc, queue] = capture("squeue -h -j " + job + " -o %i");
      empty_polls = (qrc != 0 || trim(queue).empty()) ? empty_polls + 1 : 0;
      size_t done = 0, failed = 0, running = 0;
      for (const auto& r : todo) {
        auto st = read_run_state(out / r.name);
        if (st.completed()) ++done;
        else if (st.status == "failed" || st.status == "diverged") ++failed;
        else if (st.status == "running") ++running;
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
      for (double t = 0; t < options.poll_seconds && !(g_signal != 0 && !cancelled); t += 0.1) nap(0.1);
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
    if (st.status.empty()) not_run.emplace_back(r.name, "did not run" + where);
    else if (st.status == "interrupted" || st.status == "running")
      not_run.emplace_back(r.name, st.status + " (resumes when the suite is run again)" + where);
    else failed.emplace_back(r.name, failure_text(out / r.name, st, "") + where);
  };
  for (const auto& r : suite.runs(1)) judge(r);
  std::map<std::string, Selection> sel;
  for (const auto& r : suite.runs(2)) {
    if (!sel.count(r.variant)) sel[r.variant] = suite.select(r.variant, out);
    if (sel[r.variant].ready()) judge(suite.plan_final(r, sel[r.variant]));
    else not_run.emplace_back(r.name, "waits for its search: " + sel[r.variant].error);
  }
  print_report(std::cout, out, completed + failed.size() + not_run.size(), completed, already, failed, not_run);
  if (g_signal != 0) return 128 + g_signal;
  return failed.empty() && not_run.empty() ? 0 : 1;
}

}  // namespace sgs
