// The benchmarks' command line: `--name value` pairs, each with a fallback.
#pragma once

#include <string>

namespace sgs::bench {

inline std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + name) return argv[i + 1];
  return fallback;
}

}  // namespace sgs::bench
