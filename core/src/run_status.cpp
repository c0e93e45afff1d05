#include <sgs/run_status.h>

#include <ctime>

namespace sgs {

namespace {
constexpr RunStatus kAll[] = {RunStatus::Running, RunStatus::Completed, RunStatus::Failed, RunStatus::Diverged,
                              RunStatus::Interrupted};
}  // namespace

const char* to_string(RunStatus status) {
  switch (status) {
    case RunStatus::Running: return "running";
    case RunStatus::Completed: return "completed";
    case RunStatus::Failed: return "failed";
    case RunStatus::Diverged: return "diverged";
    case RunStatus::Interrupted: return "interrupted";
  }
  return "?";
}

std::optional<RunStatus> parse_run_status(std::string_view name) {
  for (RunStatus s : kAll)
    if (name == to_string(s)) return s;
  return std::nullopt;
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace sgs
