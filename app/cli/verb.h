// CLI verbs: each in its own file, registered with SGS_VERB. A verb parses its
// options, builds from the registries and calls the library; exit codes are
// decided by main() from the exception type (see sgs/errors.h) or returned.
#pragma once

#include <boost/program_options.hpp>

#include <functional>
#include <string>
#include <vector>

namespace sgs::cli {

struct Verb {
  std::string name;
  std::string summary;
  std::function<int(const std::vector<std::string>& args)> run;
};

std::vector<Verb>& verbs();

struct VerbRegistrar {
  VerbRegistrar(Verb v) { verbs().push_back(std::move(v)); }
};

namespace po = boost::program_options;

// Parses `args` with `options` (and `positional`); returns false after
// printing the verb's help when --help is given. Throws ConfigError on bad usage.
bool parse_args(const std::string& verb, const std::string& usage, const std::vector<std::string>& args,
                po::options_description& options, const po::positional_options_description& positional,
                po::variables_map& vm);

}  // namespace sgs::cli

#define SGS_VERB_CONCAT_INNER(a, b) a##b
#define SGS_VERB_CONCAT(a, b) SGS_VERB_CONCAT_INNER(a, b)
#define SGS_VERB(name, summary, fn) \
  static const ::sgs::cli::VerbRegistrar SGS_VERB_CONCAT(sgs_verb_, __LINE__)({name, summary, fn});
