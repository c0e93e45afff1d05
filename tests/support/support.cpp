#include "support/support.h"

#include "analysis/runs.h"
#include "app/process.h"

#include <sgs/config.h>
#include <sgs/run_file.h>

#include <H5Cpp.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace sgs::test {

TempDir::TempDir(const std::string& name) {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("sgs_test_" + name + "_" + std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Json tiny_config(int64_t epochs) {
  return Json{
      {"epochs", epochs},
      {"batch_size", 32},
      {"eval_batch_size", 64},
      {"threads", 1},
      {"data_workers", 1},
      {"device", "cpu"},
      {"dataset", {{"name", "synthetic"}, {"size", 8}, {"channels", 1}, {"classes", 4}, {"train_size", 256},
                   {"test_size", 64}}},
      {"model", {{"name", "vgg11"}, {"width", 0.125}}},
      {"optimizer", {{"name", "sgd"}, {"lr", 0.05}, {"momentum", 0.9}, {"weight_decay", 5e-4}}},
      {"schedule", {{"name", "cosine"}}},
  };
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_json(const std::filesystem::path& path, const Json& value) {
  std::ofstream out(path);
  out << value.dump(2);
}

CommandResult run_sgs(const std::string& args, const std::filesystem::path& scratch) {
  auto out = scratch / "cmd.stdout", err = scratch / "cmd.stderr";
  std::string cmd = std::string(SGS_BINARY) + " " + args + " > " + out.string() + " 2> " + err.string() + " < /dev/null";
  int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_text(out), read_text(err)};
}

int spawn_sgs(const std::vector<std::string>& args, const SpawnOptions& options) {
  // app/process's spawn: the environment is built before fork and handed to
  // execve (nothing but async-signal-safe calls in the child).
  auto open_or_null = [](const std::filesystem::path& p) {
    return p.empty() ? open("/dev/null", O_WRONLY | O_CLOEXEC) : open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  };
  ChildSpec child;
  child.binary = SGS_BINARY;
  child.argv = {SGS_BINARY};
  child.argv.insert(child.argv.end(), args.begin(), args.end());
  child.env = options.env;
  child.null_stdin = true;
  child.new_group = options.new_group;
  child.output_fd = open_or_null(options.out);
  child.error_fd = open_or_null(options.err);
  pid_t pid = spawn(child);
  close(child.output_fd);
  close(child.error_fd);
  return pid;
}

int wait_child(int pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::vector<double> read_doubles(const std::string& file, const std::string& dataset) {
  H5::H5File f(file, H5F_ACC_RDONLY);
  auto ds = f.openDataSet(dataset);
  auto n = ds.getSpace().getSimpleExtentNpoints();
  std::vector<double> v(static_cast<size_t>(n));
  if (n > 0) ds.read(v.data(), H5::PredType::NATIVE_DOUBLE);
  return v;
}

std::vector<int64_t> read_dims(const std::string& file, const std::string& dataset) {
  H5::H5File f(file, H5F_ACC_RDONLY);
  auto space = f.openDataSet(dataset).getSpace();
  std::vector<hsize_t> d(space.getSimpleExtentNdims());
  space.getSimpleExtentDims(d.data());
  return std::vector<int64_t>(d.begin(), d.end());
}

bool has_object(const std::string& file, const std::string& path) {
  H5::H5File f(file, H5F_ACC_RDONLY);
  // Check every prefix so that a missing group is not an error.
  std::string prefix;
  std::stringstream parts(path);
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part.empty()) continue;
    prefix += "/" + part;
    if (H5Lexists(f.getId(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return true;
}

namespace {
H5::Attribute open_attr(H5::H5File& f, const std::string& object, const std::string& name) {
  if (object == "/") return f.openAttribute(name);
  return f.openGroup(object).openAttribute(name);
}
}  // namespace

std::string read_string_attr(const std::string& file, const std::string& object, const std::string& name) {
  H5::H5File f(file, H5F_ACC_RDONLY);
  auto a = open_attr(f, object, name);
  std::string s;
  a.read(a.getStrType(), s);
  return s;
}

double read_number_attr(const std::string& file, const std::string& object, const std::string& name) {
  H5::H5File f(file, H5F_ACC_RDONLY);
  double v = 0;
  open_attr(f, object, name).read(H5::PredType::NATIVE_DOUBLE, &v);
  return v;
}

std::vector<int64_t> read_ints_attr(const std::string& file, const std::string& object, const std::string& name) {
  H5::H5File f(file, H5F_ACC_RDONLY);
  auto a = open_attr(f, object, name);
  std::vector<int64_t> v(static_cast<size_t>(a.getSpace().getSimpleExtentNpoints()));
  a.read(H5::PredType::NATIVE_INT64, v.data());
  return v;
}

RunResult train(const Json& raw, const std::filesystem::path& out, bool resume, int64_t stop_after) {
  RunOptions o;
  o.out_dir = out.string();
  o.resume = resume;
  o.quiet = true;
  o.stop_after_steps = stop_after;
  return run_training(resolve_config(raw, "test"), o);
}

std::vector<double> metric(const std::filesystem::path& dir, const std::string& name) {
  return read_doubles((dir / "run.h5").string(), "/metrics/" + name);
}

std::vector<StructureChange> structure_changes(const std::filesystem::path& dir) {
  std::vector<StructureChange> out;
  for (const auto& layer : read_run_file((dir / "run.h5").string(), kRunLayers).layers)
    for (const auto& c : analysis::structure_changes(layer))
      out.emplace_back(layer.name, c.epoch, c.event, c.node, c.branches);
  return out;
}

}  // namespace sgs::test
