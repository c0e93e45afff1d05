// The project's error types. Library code throws; only main() maps them to
// exit codes (2 config/usage, 1 data, I/O and other failures, 3 diverged run).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace sgs {

// A bad config value, unknown key or plugin name, or bad command-line usage.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A missing, corrupt or unreadable dataset file.
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A file that cannot be written or read for a reason of the system (disk
// full, I/O error, permissions): the message names the file and the reason.
struct IoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The loss became NaN or infinite.
struct DivergedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The names in `known` closest to `name` (edit distance), best first.
std::vector<std::string> close_matches(const std::string& name,
                                       const std::vector<std::string>& known,
                                       std::size_t max_results = 3);

// "; did you mean 'a'?" or "" when nothing is close.
std::string did_you_mean(const std::string& name, const std::vector<std::string>& known);

std::string join(const std::vector<std::string>& items, const std::string& sep);

// An exception's message as one line: LibTorch's without its C++ stack trace,
// line breaks folded. What main() prints and what run.h5's "error" holds.
std::string error_message(const std::exception& e);

}  // namespace sgs
