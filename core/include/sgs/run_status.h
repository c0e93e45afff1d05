// Where a run stands, as run.h5's root attribute "status" records it
// (docs/run_file.md, Status values).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sgs {

enum class RunStatus { Running, Completed, Failed, Diverged, Interrupted };

// The name run.h5 records: "running", "completed", "failed", "diverged", "interrupted".
const char* to_string(RunStatus status);

// The status a recorded name stands for; nullopt for any other text.
std::optional<RunStatus> parse_run_status(std::string_view name);

// ISO-8601 UTC "2026-11-26T18:00:00Z" (the "created" and "finished" times).
std::string utc_now();

}  // namespace sgs
