// Faults a run must survive: kills at every write, full disks, a second
// writer, corrupt checkpoints, closed pipes. What is checked each time: run.h5
// is readable, nothing temporary is left, and resuming gives the run an
// uninterrupted one gives (every dataset and summary value but timings).
#include "support/support.h"

#include <sgs/world.h>

#include <doctest/doctest.h>

#include <H5Cpp.h>

#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;
using namespace sgs::test;
using sgs::Json;

namespace {

// Values that depend on the clock, not on the run.
bool timing(const std::string& name) {
  return name == "/metrics/epoch_seconds" || name == "/metrics/scaling_seconds" || name == "train_seconds" ||
         name == "created" || name == "finished";
}

herr_t collect_dataset(hid_t, const char* name, const H5O_info_t* info, void* out) {
  if (info->type == H5O_TYPE_DATASET) static_cast<std::vector<std::string>*>(out)->push_back(std::string("/") + name);
  return 0;
}

// Every dataset (as doubles) and every /summary attribute, timings left out.
std::map<std::string, std::vector<double>> run_contents(const fs::path& file) {
  H5::Exception::dontPrint();
  H5::H5File f(file.string(), H5F_ACC_RDONLY);
  std::vector<std::string> names;
#if H5_VERSION_GE(1, 12, 0)
  H5Ovisit(f.getId(), H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &names, H5O_INFO_BASIC);
#else
  H5Ovisit(f.getId(), H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &names);
#endif
  std::map<std::string, std::vector<double>> out;
  for (const auto& n : names) {
    if (timing(n)) continue;
    auto ds = f.openDataSet(n);
    std::vector<double> v(static_cast<size_t>(ds.getSpace().getSimpleExtentNpoints()));
    if (!v.empty()) ds.read(v.data(), H5::PredType::NATIVE_DOUBLE);
    out[n] = v;
  }
  auto summary = f.openGroup("summary");
  for (int i = 0; i < summary.getNumAttrs(); ++i) {
    auto a = summary.openAttribute(static_cast<unsigned>(i));
    if (timing(a.getName())) continue;
    double v = 0;
    a.read(H5::PredType::NATIVE_DOUBLE, &v);
    out["/summary@" + a.getName()] = {v};
  }
  return out;
}

// Equal, NaN (not evaluated) included.
bool same_values(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  return true;
}

// The same run: equal contents, completed.
void check_same_run(const fs::path& dir, const fs::path& reference) {
  REQUIRE(read_string_attr((dir / "run.h5").string(), "/", "status") == "completed");
  auto a = run_contents(dir / "run.h5"), b = run_contents(reference / "run.h5");
  CHECK(a.size() == b.size());
  for (const auto& [name, values] : b) {
    INFO(dir.string() << " " << name);
    REQUIRE(a.count(name) == 1);
    CHECK(same_values(a[name], values));
  }
}

// Files a run directory must not hold once its run has stopped.
std::vector<std::string> temporaries(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp") != std::string::npos) out.push_back(e.path().string());
  return out;
}

bool readable(const fs::path& file) {
  H5::Exception::dontPrint();
  try {
    H5::H5File f(file.string(), H5F_ACC_RDONLY);
    auto a = f.openAttribute("status");
    std::string s;
    a.read(a.getStrType(), s);
    f.openGroup("metrics");
    f.openGroup("layers");
    return !s.empty();
  } catch (const H5::Exception&) {
    return false;
  }
}

int lines(const std::string& text) {
  int n = 0;
  for (char c : text) n += c == '\n';
  return n + (!text.empty() && text.back() != '\n');
}

// One line, "sgs: ...", no C++ stack trace.
void check_one_line_error(const CommandResult& r) {
  INFO(r.err);
  CHECK(lines(r.err) == 1);
  CHECK(r.err.rfind("sgs: ", 0) == 0);
  CHECK(r.err.find("Exception raised from") == std::string::npos);
}

// A short mutual-information run: an update before each of its 2 epochs.
Json mi_config() {
  Json c = tiny_config(2);
  c["dataset"]["train_size"] = 128;
  c["dataset"]["test_size"] = 32;
  c["data_workers"] = 0;
  c["strategy"] = {{"name", "mutual_information"}, {"every", 1}, {"warmup_epochs", 0}, {"batches", 1}};
  return c;
}

// A tiny ACB run's config (a structural strategy: fuse has work to do).
Json acb_config(int64_t epochs, int64_t train_size) {
  Json c = tiny_config(epochs);
  c["dataset"]["train_size"] = train_size;
  c["strategy"] = {{"name", "acb"}};
  return c;
}

// A tmpfs of `size` at `at` (root only); false when it cannot be mounted.
bool mount_tmpfs(const fs::path& at, const std::string& size) {
  fs::create_directories(at);
  return ::mount("tmpfs", at.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
}
bool resize_tmpfs(const fs::path& at, const std::string& size) {
  return ::mount("tmpfs", at.c_str(), "tmpfs", MS_REMOUNT, ("size=" + size).c_str()) == 0;
}

struct Unmount {
  fs::path at;
  ~Unmount() { ::umount2(at.c_str(), MNT_DETACH); }
};

}  // namespace

TEST_CASE("reliability: killed before each of its writes, a mutual-information run stays readable and resumes to "
          "the uninterrupted run") {
  TempDir dir("fault_sweep");
  const fs::path config = dir / "c.json";
  write_json(config, mi_config());
  // The reference, with the shim counting the writes to its directory.
  const fs::path reference = dir / "reference";
  SpawnOptions count;
  count.env = {{"LD_PRELOAD", SGS_FAULT_SHIM},
               {"SGS_FAULT_DIR", reference.string()},
               {"SGS_FAULT_COUNT_FILE", (dir / "count").string()}};
  REQUIRE(wait_child(spawn_sgs({"run", config.string(), "--out", reference.string(), "-q"}, count)) == 0);
  const long writes = std::stol(read_text(dir / "count"));
  MESSAGE("writes to the run directory: " << writes);
  REQUIRE(writes >= 8);  // config, run.h5 at the start and after each epoch and at the end, checkpoints
  check_same_run(reference, reference);

  // Every kill point: before write k, and in the middle of write k (torn).
  std::vector<std::pair<long, bool>> points;
  for (long k = 1; k <= writes; ++k)
    for (bool torn : {false, true}) points.emplace_back(k, torn);
  auto start = [&](const std::pair<long, bool>& point) {
    const fs::path out = dir / ("k" + std::to_string(point.first) + (point.second ? "_torn" : ""));
    SpawnOptions kill;
    kill.env = {{"LD_PRELOAD", SGS_FAULT_SHIM}, {"SGS_FAULT_DIR", out.string()},
                {"SGS_FAULT_KILL_AT", std::to_string(point.first)}, {"SGS_FAULT_PARTIAL", point.second ? "1" : "0"}};
    return std::make_pair(out, spawn_sgs({"run", config.string(), "--out", out.string(), "-q"}, kill));
  };
  int unreadable = 0, unresumable = 0;
  // Two at a time (the machine's cores); each killed run is checked, resumed and compared.
  for (size_t i = 0; i < points.size(); i += 2) {
    std::vector<std::pair<fs::path, int>> batch{start(points[i])};
    if (i + 1 < points.size()) batch.push_back(start(points[i + 1]));
    for (auto& [out, pid] : batch) {
      INFO(out.string());
      CHECK(wait_child(pid) == 128 + SIGKILL);
      if (fs::exists(out / "run.h5") && !readable(out / "run.h5")) ++unreadable;
    }
    std::vector<int> resumes;
    for (auto& [out, pid] : batch)
      resumes.push_back(spawn_sgs({"run", config.string(), "--out", out.string(), "-q", "--resume"}));
    for (size_t j = 0; j < batch.size(); ++j) {
      const fs::path& out = batch[j].first;
      INFO(out.string());
      if (wait_child(resumes[j]) != 0) {
        ++unresumable;
        continue;
      }
      check_same_run(out, reference);
      CHECK(temporaries(out).empty());
      fs::remove_all(out);
    }
  }
  MESSAGE(points.size() << " kill points: " << unreadable << " unreadable run files, " << unresumable
                        << " runs that did not resume");
  CHECK(unreadable == 0);
  CHECK(unresumable == 0);
}

TEST_CASE("reliability: a full disk (2 MB, 96 KB, full) stops the run with one line, keeps what was written, and "
          "the run resumes once there is space" * doctest::skip()) {
  TempDir dir("disk_full");
  if (::geteuid() != 0) {
    SGS_SKIP("mounting a tmpfs needs root");
  }
  const fs::path config = dir / "c.json";
  write_json(config, mi_config());
  REQUIRE(run_sgs("run " + config.string() + " --out " + (dir / "reference").string() + " -q", dir.path()).exit_code ==
          0);
  for (const std::string size : {"2m", "96k", "full"}) {
    INFO(size);
    const fs::path mnt = dir / ("fs_" + size);
    if (!mount_tmpfs(mnt, size == "full" ? "64k" : size)) {
      SGS_SKIP("cannot mount a tmpfs here");
    }
    Unmount unmount{mnt};
    const fs::path filler = mnt / "filler", out = mnt / "run";
    if (size == "full") {  // fill it up
      std::ofstream f(filler, std::ios::binary);
      std::string block(4096, 'x');
      while (f.write(block.data(), static_cast<std::streamsize>(block.size()))) {
      }
    }
    auto r = run_sgs("run " + config.string() + " --out " + out.string() + " -q", dir.path());
    CHECK(r.exit_code == 1);
    check_one_line_error(r);
    CHECK(r.err.find("No space left on device") != std::string::npos);
    CHECK(temporaries(out).empty());
    if (fs::exists(out / "config.json")) CHECK(fs::file_size(out / "config.json") > 0);
    if (fs::exists(out / "run.h5")) CHECK(readable(out / "run.h5"));
    // Space again: the run resumes (or starts, when nothing was kept) and ends as the reference.
    fs::remove(filler);
    REQUIRE(resize_tmpfs(mnt, "64m"));
    auto resumed = run_sgs("run " + config.string() + " --out " + out.string() + " -q --resume", dir.path());
    INFO(resumed.err);
    REQUIRE(resumed.exit_code == 0);
    check_same_run(out, dir / "reference");
    CHECK(temporaries(out).empty());
  }
}

TEST_CASE("reliability: a second sgs run on a run directory in use is refused, naming the holder's pid") {
  TempDir dir("second_writer");
  Json c = tiny_config(2);
  c["dataset"]["train_size"] = 4096;  // a few seconds
  write_json(dir / "c0.json", c);
  c["seed"] = 1;
  write_json(dir / "c1.json", c);
  const fs::path out = dir / "run";
  int first = spawn_sgs({"run", (dir / "c0.json").string(), "--out", out.string(), "-q"});
  for (int i = 0; i < 2000 && !fs::exists(out / "run.h5"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(fs::exists(out / "run.h5"));
  // The first run is stopped while the second tries, so that it still holds
  // the directory however fast it trains (no timing involved).
  REQUIRE(kill(first, SIGSTOP) == 0);
  auto second = run_sgs("run " + (dir / "c1.json").string() + " --out " + out.string() + " -q", dir.path());
  REQUIRE(kill(first, SIGCONT) == 0);
  CHECK(second.exit_code == 1);
  check_one_line_error(second);
  CHECK(second.err.find("(pid " + std::to_string(first) + ") is writing this run directory") != std::string::npos);
  REQUIRE(wait_child(first) == 0);
  CHECK(sgs::Json::parse(read_text(out / "config.json"))["seed"] == 0);
  CHECK(sgs::Json::parse(read_string_attr((out / "run.h5").string(), "/", "config"))["seed"] == 0);
  CHECK(read_doubles((out / "run.h5").string(), "/metrics/epoch") == std::vector<double>{1, 2});
}

TEST_CASE("reliability: corrupt, truncated, random and empty checkpoints are refused with one line") {
  TempDir dir("corrupt_checkpoint");
  Json c = acb_config(2, 128);
  write_json(dir / "c.json", c);
  const fs::path out = dir / "run";
  REQUIRE(run_sgs("run " + (dir / "c.json").string() + " --out " + out.string() + " -q", dir.path()).exit_code == 0);
  const std::string good = read_text(out / "checkpoint.pt"), h5 = read_text(out / "run.h5");
  std::string flipped = good;
  for (size_t i = 0; i < 16; ++i) flipped[flipped.size() / 2 + i] ^= 0x5A;
  std::string random(good.size(), '\0');
  for (size_t i = 0; i < random.size(); ++i) random[i] = static_cast<char>((i * 2654435761u) >> 13);
  const std::vector<std::pair<std::string, std::pair<std::string, std::string>>> cases{
      {"flipped", {flipped, "fails its CRC-32 check"}},
      {"truncated", {good.substr(0, good.size() / 3), "truncated"}},
      {"random", {random, "not a valid checkpoint"}},
      {"empty", {"", "the checkpoint is empty (0 bytes)"}},
  };
  for (const auto& [name, data] : cases) {
    INFO(name);
    std::ofstream(out / "checkpoint.pt", std::ios::binary | std::ios::trunc) << data.first;
    auto resume = run_sgs("run " + (dir / "c.json").string() + " --out " + out.string() + " -q --resume", dir.path());
    CHECK(resume.exit_code == 1);
    check_one_line_error(resume);
    CHECK(resume.err.find(data.second) != std::string::npos);
    CHECK(read_text(out / "run.h5") == h5);  // untouched: no restart, no truncation
    auto fuse = run_sgs("fuse " + out.string() + " --out " + (dir / "fused.pt").string(), dir.path());
    CHECK(fuse.exit_code == 1);
    check_one_line_error(fuse);
    CHECK(fuse.err.find(data.second) != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "fused.pt"));
  }
  // No checkpoint at all, but finished epochs: --resume does not start over.
  fs::remove(out / "checkpoint.pt");
  auto resume = run_sgs("run " + (dir / "c.json").string() + " --out " + out.string() + " -q --resume", dir.path());
  CHECK(resume.exit_code == 1);
  check_one_line_error(resume);
  CHECK(resume.err.find("run without --resume to start the run again") != std::string::npos);
  CHECK(read_text(out / "run.h5") == h5);
}

TEST_CASE("reliability: a closed output pipe does not stop a run") {
  TempDir dir("closed_pipe");
  write_json(dir / "c.json", tiny_config(2));
  const fs::path out = dir / "run";
  // head -c 0 exits at once: every write to the pipe fails (SIGPIPE / EPIPE).
  const std::string cmd = "bash -c 'set -o pipefail; \"" + std::string(SGS_BINARY) + "\" run " +
                          (dir / "c.json").string() + " --out " + out.string() +
                          " --progress lines 2>&1 | (exec head -c 0); exit ${PIPESTATUS[0]}'";
  int rc = std::system(cmd.c_str());
  CHECK(WIFEXITED(rc));
  CHECK(WEXITSTATUS(rc) == 0);
  CHECK(read_string_attr((out / "run.h5").string(), "/", "status") == "completed");
}

TEST_CASE("reliability: crashes that became errors (dependence, fuse, plugin entry points)") {
  TempDir dir("crashes");
  // A feature-map file with a group, an empty map and a small map.
  {
    H5::H5File f((dir / "maps.h5").string(), H5F_ACC_TRUNC);
    f.createGroup("group");
    hsize_t empty[4] = {0, 2, 5, 5}, small[4] = {2, 2, 5, 5};
    f.createDataSet("empty", H5::PredType::NATIVE_FLOAT, H5::DataSpace(4, empty));
    auto ds = f.createDataSet("small", H5::PredType::NATIVE_FLOAT, H5::DataSpace(4, small));
    std::vector<float> v(100, 1.0f);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 7);
    ds.write(v.data(), H5::PredType::NATIVE_FLOAT);
  }
  const std::string maps = (dir / "maps.h5").string();
  auto group = run_sgs("dependence " + maps + " --dataset group", dir.path());
  CHECK(group.exit_code == 1);
  check_one_line_error(group);
  CHECK(group.err.find("'group' is a group, not a dataset") != std::string::npos);
  auto empty = run_sgs("dependence " + maps + " --dataset empty", dir.path());
  CHECK(empty.exit_code == 1);
  check_one_line_error(empty);
  CHECK(empty.err.find("no examples") != std::string::npos);
  auto kernel = run_sgs("dependence " + maps + " --dataset small --kernel 1000000", dir.path());
  CHECK(kernel.exit_code == 2);
  check_one_line_error(kernel);
  CHECK(kernel.err.find("--kernel:") != std::string::npos);

  // fuse --out where no file can be made (under a regular file).
  Json c = acb_config(1, 64);
  write_json(dir / "c.json", c);
  REQUIRE(run_sgs("run " + (dir / "c.json").string() + " --out " + (dir / "run").string() + " -q", dir.path())
              .exit_code == 0);
  std::ofstream(dir / "file") << "x";
  auto fuse = run_sgs("fuse " + (dir / "run").string() + " --no-eval --out " + (dir / "file" / "m.pt").string(),
                      dir.path());
  CHECK(fuse.exit_code == 1);
  check_one_line_error(fuse);
  CHECK(fuse.err.find((dir / "file" / "m.pt").string()) != std::string::npos);

  // A plugin whose entry point throws something that is not a std::exception.
  auto plugin = run_sgs("--plugin " + std::string(SGS_THROWING_PLUGIN) + " plugins", dir.path());
  CHECK(plugin.exit_code == 2);
  check_one_line_error(plugin);
  CHECK(plugin.err.find("sgs_register_plugins threw") != std::string::npos);

  // A plugin of a kind sgs does not have is refused, not kept unused.
  auto kind = run_sgs("--plugin " + std::string(SGS_UNKNOWN_KIND_PLUGIN) + " plugins", dir.path());
  CHECK(kind.exit_code == 2);
  check_one_line_error(kind);
  CHECK(kind.err.find("registers strateg 'typo', of a kind sgs does not have; did you mean 'strategy'?") !=
        std::string::npos);
}

TEST_CASE("reliability: SIGTERM during the start-up (a rank waiting for the others) ends the run at once, nothing written") {
  if (!sgs::distributed_available()) SGS_SKIP("no c10d Gloo process group in this build");
  TempDir dir("startup_signal");
  write_json(dir / "c.json", tiny_config(1));
  const fs::path out = dir / "out";
  SpawnOptions o;
  // Rank 0 of 2: it waits for rank 1, which never comes, up to --dist-timeout.
  o.env = {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}, {"MASTER_ADDR", "127.0.0.1"},
           {"MASTER_PORT", std::to_string(20000 + getpid() % 20000)}};
  o.err = dir / "err.txt";
  const int pid = spawn_sgs({"run", (dir / "c.json").string(), "--out", out.string(), "--dist-timeout", "120"}, o);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto sent = std::chrono::steady_clock::now();
  ::kill(pid, SIGTERM);
  const int code = wait_child(pid);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  CHECK(code == 128 + SIGTERM);
  CHECK(seconds < 10);
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("reliability: numbers, nesting and keys at the edges are refused in one line naming the key") {
  TempDir dir("edges");
  Json c = tiny_config(1);
  c["dataset"]["train_size"] = 64;
  write_json(dir / "c.json", c);
  const std::string cfg = (dir / "c.json").string(), out = (dir / "out").string();
  auto refused = [&](const std::string& args, int code, const std::string& expected) {
    auto r = run_sgs(args, dir.path());
    INFO(args);
    CHECK(r.exit_code == code);
    check_one_line_error(r);
    CHECK(r.err.find(expected) != std::string::npos);
    CHECK(r.err.size() < 400);  // values are quoted as excerpts
    CHECK_FALSE(fs::exists(out));
  };
  refused("run " + cfg + " --out " + out + " --set epochs=1e20", 2,
          cfg + ": epochs: 1e+20 is beyond a 64-bit integer's range (expected int >= 1)");
  refused("run " + cfg + " --out " + out + " --set .epochs=1", 2,
          "--set '.epochs=1': the key '.epochs' has an empty part; expected KEY=VALUE");
  refused("run " + cfg + " --out " + out + " --set optimizer..lr=1", 2, "the key 'optimizer..lr' has an empty part");
  // Nesting: in a file and in a --set value (a crash before, from printing the value).
  {
    std::ofstream f(dir / "deep.json");
    f << "{\"description\": " << std::string(100000, '[') << std::string(100000, ']') << "}";
  }
  refused("run " + (dir / "deep.json").string() + " --out " + out, 2,
          "deep.json: description: nested deeper than 64 levels (arrays and objects)");
  refused("run " + cfg + " --out " + out + " --set strategy=fixed --set strategy.matrix=" + std::string(1000, '[') +
              std::string(1000, ']'),
          2, "strategy.matrix: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[...': nested deeper than 64 levels");
  // A long value is quoted as a short excerpt.
  std::string many = "[";
  for (int i = 0; i < 500; ++i) many += (i ? "," : "") + std::to_string(i);
  refused("run " + cfg + " --out " + out + " --set epochs=" + many + "]", 2, "epochs: expected an integer, got a list [0,1,2,3,4");
  // NaN and inf, wherever a number is given.
  refused("run " + cfg + " --out " + out + " --set optimizer.lr=nan", 2, "optimizer.lr: expected float > 0, got 'nan'");
  refused("run " + cfg + " --out " + out + " --progress-every inf", 2, "sgs run: --progress-every: expected a finite number, got inf");
  refused("run " + cfg + " --out " + out + " --dist-timeout nan", 2, "--dist-timeout: expected a finite number, got nan");
  refused("dependence " + (dir / "maps.h5").string() + " --dataset x --k inf", 2, "--k: expected a finite number, got inf");
  {
    H5::H5File f((dir / "maps.h5").string(), H5F_ACC_TRUNC);
    hsize_t dims[4] = {2, 2, 5, 5};
    auto ds = f.createDataSet("x", H5::PredType::NATIVE_FLOAT, H5::DataSpace(4, dims));
    std::vector<float> v(100, 1.0f);
    v[7] = std::nanf("");
    v[9] = INFINITY;
    ds.write(v.data(), H5::PredType::NATIVE_FLOAT);
  }
  refused("dependence " + (dir / "maps.h5").string() + " --dataset x", 1,
          "maps.h5: x: 2 values are NaN or infinite (a feature map must be finite)");
}

TEST_CASE("reliability: verbs validate every input before writing (fuse --compare), report names pooled seeds and a baseline without test accuracy") {
  TempDir dir("verb_inputs");
  Json c = acb_config(1, 64);
  write_json(dir / "c.json", c);
  const fs::path runs = dir / "runs";
  for (const char* name : {"a", "b"})
    REQUIRE(run_sgs("run " + (dir / "c.json").string() + " --out " + (runs / name).string() + " -q", dir.path())
                .exit_code == 0);
  // fuse --compare with a directory that is no run: refused before the model is written.
  auto fuse = run_sgs("fuse " + (runs / "a").string() + " --no-eval --out " + (dir / "m.pt").string() + " --compare " +
                          (dir / "nowhere").string(),
                      dir.path());
  CHECK(fuse.exit_code == 2);
  check_one_line_error(fuse);
  CHECK(fuse.err.find((dir / "nowhere").string() + ": no config.json") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "m.pt"));

  // Two runs of seed 0 pooled by --by: one warning line naming the group; n says 2.
  auto report = run_sgs("report " + runs.string() + " --by strategy.name", dir.path());
  CHECK(report.exit_code == 0);
  CHECK(lines(report.err) == 1);
  CHECK(report.err.find("sgs report: warning: group 'strategy=acb' (seed 0) pool more than one run of the same seed") !=
        std::string::npos);
  CHECK(report.out.find("| method | n |") != std::string::npos);
  CHECK(report.out.find("| strategy=acb | 2 |") != std::string::npos);

  // A reference whose runs have no test accuracy: --against says why, in one line.
  Json none = tiny_config(1);
  none["dataset"]["train_size"] = 64;
  none["evaluate"] = "none";
  write_json(dir / "none.json", none);
  REQUIRE(run_sgs("run " + (dir / "none.json").string() + " --out " + (runs / "plain").string() + " -q", dir.path())
              .exit_code == 0);
  auto against = run_sgs("report " + runs.string() + " --by strategy.name --against strategy=none", dir.path());
  CHECK(against.exit_code == 2);
  check_one_line_error(against);
  CHECK(against.err.find("--against: 'strategy=none': none of its runs has a final test accuracy") != std::string::npos);
  auto baseline = run_sgs("report " + runs.string() + " --by strategy.name", dir.path());
  CHECK(baseline.exit_code == 0);
  CHECK(baseline.err.find("warning: the baseline 'strategy=none': none of its runs has a final test accuracy") !=
        std::string::npos);
}
