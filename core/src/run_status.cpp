#include <sgs/run_status.h>

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

}  // namespace sgs
