// bench_loader: images/s the loader delivers with training augmentation on,
// for Fashion-MNIST (IDX) and CIFAR-10-format data, with 0, 1 and 2 worker
// threads at batch 128; ratios are against 0 workers (batches built in
// next()) measured in the same run.
//
//   build/bench/bench_loader [--seconds S] [--workers 0,1,2] [--consume-ms T]
//
// "in next()" is the share of the time the consumer waited for a batch. With
// --consume-ms T the consumer busy-works T ms per batch, standing in for a
// training step: then images/s is the pipeline's rate and "in next()" shows
// whether the trainer would wait on data. To extend: add a Case (a dataset
// built through the registry) or pass another per-batch `consume` to measure().
#include <sgs/dataset.h>
#include <sgs/errors.h>
#include <sgs/loader.h>
#include <sgs/registry.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::shared_ptr<sgs::Dataset> make_dataset(const std::string& name, sgs::Json keys) {
  const auto& info = sgs::Registry::global().get("dataset", name);
  keys["name"] = name;
  sgs::Options o(sgs::resolve_object(keys, "dataset", info.schema, {"name"}), "dataset");
  return sgs::Registry::global().factory<sgs::DatasetKind>(name)(o, 0);
}

struct Measurement {
  double images_per_s = 0;
  double wait_fraction = 0;  // time the consumer spent inside next()
};

// Epochs of `split` until `seconds` have passed; `consume` runs on each batch.
Measurement measure(std::shared_ptr<const sgs::Split> split, sgs::LoaderOptions options, double seconds,
                    const std::function<void(const sgs::Batch&)>& consume = {}) {
  sgs::Loader loader(std::move(split), options);
  int64_t images = 0;
  double waiting = 0, elapsed = 0;
  const auto start = Clock::now();
  for (int64_t epoch = 0; elapsed < seconds; ++epoch) {
    loader.start_epoch(epoch);
    while (elapsed < seconds) {
      const auto t0 = Clock::now();
      auto batch = loader.next();
      waiting += std::chrono::duration<double>(Clock::now() - t0).count();
      if (!batch) break;
      images += batch->images.size(0);
      if (consume) consume(*batch);
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    }
  }
  return {static_cast<double>(images) / elapsed, waiting / elapsed};
}

void put_be32(std::string& s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>(v >> shift));
}

// Random data in the official formats, for when the real sets are not installed.
void write_idx_set(const fs::path& dir, uint32_t train, uint32_t test) {
  std::mt19937 rng(1);
  auto write = [&](const std::string& stem, uint32_t n) {
    std::string images, labels;
    put_be32(images, 0x803), put_be32(images, n), put_be32(images, 28), put_be32(images, 28);
    put_be32(labels, 0x801), put_be32(labels, n);
    for (uint32_t i = 0; i < n * 784; ++i) images.push_back(static_cast<char>(rng() & 0xff));
    for (uint32_t i = 0; i < n; ++i) labels.push_back(static_cast<char>(rng() % 10));
    std::ofstream(dir / (stem + "-images-idx3-ubyte"), std::ios::binary) << images;
    std::ofstream(dir / (stem + "-labels-idx1-ubyte"), std::ios::binary) << labels;
  };
  write("train", train);
  write("t10k", test);
}

void write_cifar10_set(const fs::path& dir, uint32_t per_batch) {
  std::mt19937 rng(2);
  auto write = [&](const std::string& name) {
    std::string s;
    for (uint32_t r = 0; r < per_batch; ++r) {
      s.push_back(static_cast<char>(rng() % 10));
      for (int i = 0; i < 3072; ++i) s.push_back(static_cast<char>(rng() & 0xff));
    }
    std::ofstream(dir / name, std::ios::binary) << s;
  };
  for (int b = 1; b <= 5; ++b) write("data_batch_" + std::to_string(b) + ".bin");
  write("test_batch.bin");
}

struct Case {
  std::string name;
  std::function<std::shared_ptr<sgs::Dataset>()> make;
};

std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream s(text);
  for (std::string item; std::getline(s, item, ',');) out.push_back(std::stoll(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3.0;
  std::vector<int64_t> worker_counts = {0, 1, 2};
  double consume_ms = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) seconds = std::stod(argv[++i]);
    else if (a == "--workers" && i + 1 < argc) worker_counts = parse_list(argv[++i]);
    else if (a == "--consume-ms" && i + 1 < argc) consume_ms = std::stod(argv[++i]);
    else {
      std::cerr << "usage: bench_loader [--seconds S] [--workers 0,1,2] [--consume-ms T]\n";
      return 2;
    }
  }
  const fs::path tmp = fs::temp_directory_path() / ("sgs_bench_loader_" + std::to_string(::getpid()));
  fs::create_directories(tmp / "fashion");
  fs::create_directories(tmp / "cifar10");
  const std::string fashion_root = "/usr/share/datasets/fashion-mnist";
  const bool real_fashion = fs::exists(fashion_root + "/train-images-idx3-ubyte.gz");

  std::vector<Case> cases = {
      {real_fashion ? "fashion_mnist (60000, installed)" : "fashion_mnist (random IDX, 20000)",
       [&] {
         if (!real_fashion) write_idx_set(tmp / "fashion", 20000, 100);
         return make_dataset("fashion_mnist", {{"root", real_fashion ? fashion_root : (tmp / "fashion").string()},
                                               {"random_crop_padding", 4}, {"hflip", true}});
       }},
      {"cifar10 format (random, 20000)",
       [&] {
         write_cifar10_set(tmp / "cifar10", 4000);
         return make_dataset("cifar10", {{"root", (tmp / "cifar10").string()}, {"cutout", 16}});
       }},
  };

  // A stand-in for a training step: busy work on the consumer's thread.
  std::function<void(const sgs::Batch&)> consume;
  if (consume_ms > 0)
    consume = [consume_ms](const sgs::Batch&) {
      const auto until = Clock::now() + std::chrono::duration<double, std::milli>(consume_ms);
      while (Clock::now() < until) {
      }
    };

  int status = 0;
  try {
    std::printf("loader throughput, batch 128, training augmentation on, %.1f s per measurement, %u hardware threads",
                seconds, std::thread::hardware_concurrency());
    if (consume_ms > 0) std::printf(", consumer busy %.1f ms per batch", consume_ms);
    std::printf("\n");
    std::printf("%-36s %8s %14s %10s %12s\n", "dataset", "workers", "images/s", "vs 0", "in next()");
    for (const auto& c : cases) {
      auto dataset = c.make();
      double base = 0;
      for (int64_t w : worker_counts) {
        sgs::LoaderOptions o;
        o.batch_size = 128;
        o.workers = w;
        o.augment = true;
        auto m = measure(dataset->train(), o, seconds, consume);
        if (w == worker_counts.front()) base = m.images_per_s;
        std::printf("%-36s %8lld %14.0f %9.2fx %11.0f%%\n", c.name.c_str(), static_cast<long long>(w), m.images_per_s,
                    m.images_per_s / base, 100 * m.wait_fraction);
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_loader: " << e.what() << "\n";
    status = 1;
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);
  return status;
}
