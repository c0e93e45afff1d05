// sgs <verb> [options]: the command-line entry point. Exit codes: 0 ok,
// 2 usage/config error, 3 run diverged, 1 any other failure.
#include "verb.h"

#include <sgs/errors.h>
#include <sgs/registry.h>
#include <sgs/trainer.h>
#include <sgs/version.h>

#include <H5Cpp.h>

#include <algorithm>
#include <csignal>
#include <cmath>
#include <iostream>

namespace sgs::cli {

std::vector<Verb>& verbs() {
  static std::vector<Verb> v;
  return v;
}

bool parse_args(const std::string& verb, const std::string& usage, const std::vector<std::string>& args,
                po::options_description& options, const po::positional_options_description& positional,
                po::variables_map& vm) {
  options.add_options()("help,h", "show this help");
  try {
    po::store(po::command_line_parser(args).options(options).positional(positional).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: sgs " << verb << " " << usage << "\n\n" << options << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError("sgs " + verb + ": " + e.what() + " (see sgs " + verb + " --help)");
  }
  // Numbers are finite wherever they are given ("nan" and "inf" read as doubles).
  for (const auto& [name, value] : vm)
    if (const double* d = boost::any_cast<double>(&value.value()); d != nullptr && !std::isfinite(*d))
      throw ConfigError("sgs " + verb + ": --" + name + ": expected a finite number, got " +
                        (std::isnan(*d) ? "nan" : "inf"));
  return true;
}

}  // namespace sgs::cli

namespace {

void print_usage(std::ostream& out) {
  out << "usage: sgs [--plugin LIB.so]... <verb> [options]\n\n"
         "Spatial gradient scaling and structural reparameterization on LibTorch.\n\nverbs:\n";
  auto verbs = sgs::cli::verbs();
  std::sort(verbs.begin(), verbs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& v : verbs) out << "  " << v.name << std::string(12 - std::min<size_t>(11, v.name.size()), ' ') << v.summary << "\n";
  out << "\nglobal options:\n  --plugin LIB.so  load an out-of-tree plugin library (repeatable)\n"
         "  --version        print the version\n  --help           this help; `sgs <verb> --help` for a verb\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  sgs::keep_freed_memory();
  // Output to a closed pipe (`sgs run ... | head`) fails quietly instead of
  // killing a run: progress is informative, run.h5 is the record.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    std::size_t i = 0;
    for (; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--version") {
        std::cout << "sgs " << sgs::version_string() << "\n";
        return 0;
      } else if (a == "--help" || a == "-h") {
        print_usage(std::cout);
        return 0;
      } else if (a == "--plugin" || a.rfind("--plugin=", 0) == 0) {
        std::string path = a == "--plugin" ? (i + 1 < args.size() ? args[++i] : "") : a.substr(9);
        if (path.empty()) throw sgs::ConfigError("--plugin: expected a library path");
        sgs::load_plugin_library(path);
      } else if (!a.empty() && a[0] == '-') {
        throw sgs::ConfigError("unknown global option '" + a + "' (see sgs --help)");
      } else {
        break;
      }
    }
    if (i == args.size()) {
      print_usage(std::cerr);
      return 2;
    }
    const std::string verb = args[i];
    std::vector<std::string> rest(args.begin() + static_cast<long>(i) + 1, args.end());
    for (const auto& v : sgs::cli::verbs())
      if (v.name == verb) return v.run(rest);
    std::vector<std::string> names;
    for (const auto& v : sgs::cli::verbs()) names.push_back(v.name);
    throw sgs::ConfigError("unknown verb '" + verb + "'" + sgs::did_you_mean(verb, names) + " (known: " +
                           sgs::join(names, ", ") + ")");
  } catch (const sgs::ConfigError& e) {
    std::cerr << "sgs: error: " << sgs::error_message(e) << "\n";
    return 2;
  } catch (const sgs::DivergedError& e) {
    std::cerr << "sgs: diverged: " << sgs::error_message(e) << "\n";
    return 3;
  } catch (const sgs::DataError& e) {
    std::cerr << "sgs: data error: " << sgs::error_message(e) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "sgs: error: " << sgs::error_message(e) << "\n";
    return 1;
  } catch (const H5::Exception& e) {  // a reader that did not name its file (a bug: report it)
    std::cerr << "sgs: error: HDF5: " << e.getFuncName() << ": " << e.getDetailMsg() << "\n";
    return 1;
  } catch (...) {
    std::cerr << "sgs: error: an unknown exception (a bug: please report it with the command line)\n";
    return 1;
  }
}
