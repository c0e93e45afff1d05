// What the suite's files share (app/suite/*.cpp): the suite file's values,
// run directories (state, locks, starting a run), messages, signals.
// Not an interface: the public one is suite.h.
#pragma once

#include "app/suite/suite.h"
#include "app/process.h"

#include <sgs/interrupt.h>

#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

namespace sgs::suite_detail {

namespace fs = std::filesystem;
using Ordered = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

Json plain(const Ordered& o);
std::string value_text(const Json& v);
std::string assignments_text(const Assignments& a);
Json assignments_object(const Assignments& a);
[[noreturn]] void fail(const std::string& source, const std::string& where, const std::string& what);
void check_keys(const Ordered& obj, const std::string& source, const std::string& where,
                const std::vector<std::string>& known);
Assignments read_set(const Ordered& v, const std::string& source, const std::string& where);
bool name_char(char c);
std::string safe_name(const std::string& s);
std::string axis_label(const std::string& key, const std::vector<std::string>& keys);
void apply_assignment(Json& raw, const std::string& key, const Json& value);
// Every combination of the axes' values, the first axis slowest.
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
void write_atomically(const fs::path& path, const std::string& text);
// OUT/.suite.lock (flock, created with OUT), held while a suite process
// compares and writes OUT's shared files (suite.json, plan.json,
// selection.json): processes of one suite take turns.
class FolderLock {
 public:
  explicit FolderLock(const fs::path& out_dir);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_ = -1;
};
std::string last_line(const fs::path& file);
std::string shell_quote(const std::string& s);
std::string format_seconds(double s);
void nap(double seconds);
int try_lock(const fs::path& run_dir);
pid_t launch(const SuiteRun& run, const fs::path& dir, bool fresh, int lock_fd, const std::string& binary);
std::string failure_text(const fs::path& dir, const RunState& state, const std::string& how);
std::string first_difference(const Json& a, const Json& b);
std::string config_conflict(const SuiteRun& run, const fs::path& out_dir);
void check_conflicts(const std::vector<SuiteRun>& runs, const fs::path& out_dir);
void write_selections(const Suite& suite, const std::vector<Selection>& selections, const fs::path& out_dir);
std::string selection_text(const Suite& suite, const Selection& s);
// The suite's last lines: how many runs completed, failed (with why) and were not run.
void print_report(std::ostream& out, const fs::path& dir, size_t total, size_t completed, size_t already,
                  const std::vector<std::pair<std::string, std::string>>& failed,
                  const std::vector<std::pair<std::string, std::string>>& not_run);

}  // namespace sgs::suite_detail
