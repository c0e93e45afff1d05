// Helpers shared by the tests: temporary directories, tiny configs, running
// the CLI, reading run.h5 back.
#pragma once

#include <sgs/schema.h>
#include <sgs/trainer.h>

#include <array>
#include <filesystem>
#include <tuple>
#include <string>
#include <utility>
#include <vector>

// Ends the current test case as skipped, saying why: for tests whose data or
// tools are absent. CTest reports a case whose output holds "SKIPPED:" as
// skipped, not passed (tests/CMakeLists.txt); doctest alone shows the message.
#define SGS_SKIP(why)            \
  do {                           \
    MESSAGE("SKIPPED: " << why); \
    return;                      \
  } while (0)

namespace sgs::test {

// A fresh, empty directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& name);
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& child) const { return path_ / child; }

 private:
  std::filesystem::path path_;
};

// A few-second run: VGG-11 at width 1/8 on 8x8 synthetic images, one thread.
Json tiny_config(int64_t epochs = 2);

// Trains `raw` (resolved) into `out` in this process, quietly; `stop_after`
// steps > 0 interrupts it there (as a signal would).
RunResult train(const Json& raw, const std::filesystem::path& out, bool resume = false, int64_t stop_after = 0);
// /metrics/<name> of DIR/run.h5.
std::vector<double> metric(const std::filesystem::path& dir, const std::string& name);
// Every graph change (dyrep) of DIR/run.h5, layer by layer in order:
// (layer, epoch, event, node, branches).
using StructureChange = std::tuple<std::string, int64_t, int, int, std::array<int, 7>>;
std::vector<StructureChange> structure_changes(const std::filesystem::path& dir);

void write_json(const std::filesystem::path& path, const Json& value);
// The whole file's bytes ("" when it cannot be read).
std::string read_text(const std::filesystem::path& path);

struct CommandResult {
  int exit_code;
  std::string out, err;
};
// Runs `sgs ARGS` (build/sgs), capturing stdout and stderr.
CommandResult run_sgs(const std::string& args, const std::filesystem::path& scratch);

// How spawn_sgs starts the child: extra environment variables, where its
// stdout/stderr go (empty: discarded), and whether it leads a new process
// group (so that the whole group can be signalled).
struct SpawnOptions {
  std::vector<std::pair<std::string, std::string>> env;
  std::filesystem::path out, err;
  bool new_group = false;
};
// Starts `sgs ARGS...` as a child process (stdin from /dev/null); returns its pid.
int spawn_sgs(const std::vector<std::string>& args, const SpawnOptions& options = {});
// Waits for a spawned child; returns its exit code, or 128 + signal.
int wait_child(int pid);

// run.h5 reading.
std::vector<double> read_doubles(const std::string& file, const std::string& dataset);
std::vector<int64_t> read_dims(const std::string& file, const std::string& dataset);
bool has_object(const std::string& file, const std::string& path);
std::string read_string_attr(const std::string& file, const std::string& object, const std::string& name);
double read_number_attr(const std::string& file, const std::string& object, const std::string& name);
std::vector<int64_t> read_ints_attr(const std::string& file, const std::string& object, const std::string& name);

}  // namespace sgs::test
