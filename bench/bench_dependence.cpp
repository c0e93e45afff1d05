// Mutual-information dependence (k = 5, no diagonal removal) of VGG-11 CIFAR
// feature maps: sgs::dependence::compute next to the authors' public Python
// code (numpy + fast_histogram), on the same maps, in one run.
//   build/bench/bench_dependence [--authors CHECKOUT] [--images 256] [--repeats 5] [--authors-repeats 3]
//                                [--threads 0] [--python /usr/bin/python3] [--features maps.h5]
//                                [--device auto|cpu|cuda]
// The maps: VGG-11 (width 1, BatchNorm statistics set from the same batch) run
// in eval mode on synthetic CIFAR-shaped images; for each of the shapes
// 64x32x32, 128x16x16, 256x8x8 and 512x4x4 the first BN-ReLU output of that
// shape, i.e. the input of the layer after it (named by that layer's path:
// a max-pool for the first two, a 3x3 conv for the others; VGG-11 has no conv
// that sees 64x32x32 or 128x16x16), zero-padded by 1 as a 3x3 conv pads it.
// They are written unpadded to an HDF5 file, which bench/authors_dependence.py
// reads; it times their feature_map_nmik on the same padded maps (their
// code is single-threaded). Times are the best of the repetitions; ours are
// taken before and after theirs, with all cores (--threads, 0 = all) and
// with one; on --device cuda (the default where there is one) on the GPU
// (the maps moved there, the result back to the host inside the timing) and
// with all cores, and the GPU's scaling is compared with the CPU's. The
// scalings are compared entry by entry, as computed (ours float64, theirs
// float32) and with ours reduced over channels in float32 as theirs are.
#include "bench/bench_args.h"
#include "plugins/strategies/common/dependence.h"

#include <sgs/config.h>
#include <sgs/dataset.h>
#include <sgs/loader.h>
#include <sgs/model.h>
#include <sgs/norm.h>
#include <sgs/registry.h>

#include <H5Cpp.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

namespace {

using sgs::bench::arg;

struct Layer {
  std::string name;     // path of the module that consumes the map
  std::string kind;     // what that module is
  torch::Tensor map;    // float32 [N, C, H, W], unpadded, on the CPU
  torch::Tensor padded, padded_cpu;  // on the benchmark's device; on the CPU
  double ours_device = INFINITY, ours_second = INFINITY, theirs = NAN;
  torch::Tensor scaling, per_channel;  // (host copies) of the first pass
  torch::Tensor second_scaling, their_scaling;
};

// Our two timed passes: on the CPU with all threads, then one; on a GPU,
// there, then on the CPU with all threads.
struct Pass {
  std::string label;
  bool on_device;  // else the CPU
  int threads;
};
std::vector<Pass> passes(const torch::Device& device, int threads) {
  const std::string all = std::to_string(threads) + "t";
  if (device.is_cuda()) return {{"cuda", true, threads}, {"cpu " + all, false, threads}};
  return {{all, true, threads}, {"1t", false, 1}};
}

torch::Tensor synthetic_images(int64_t count) {
  const auto& reg = sgs::Registry::global();
  sgs::Json keys = {{"name", "synthetic"}, {"train_size", count}, {"test_size", 0}};
  sgs::Options o(sgs::resolve_object(keys, "dataset", reg.get("dataset", "synthetic").schema, {"name"}), "dataset");
  auto dataset = reg.factory<sgs::DatasetKind>("synthetic")(o, 0);
  sgs::LoaderOptions lo;
  lo.batch_size = count;
  lo.shuffle = lo.augment = false;
  lo.workers = 0;
  sgs::Loader loader(dataset->train(), lo);
  loader.start_epoch(0);
  return loader.next()->images;
}

// The first BN-ReLU output of each wanted shape, VGG-11 width 1 on `images`.
std::vector<Layer> vgg11_maps(const torch::Tensor& images) {
  const auto& reg = sgs::Registry::global();
  sgs::Json keys = {{"name", "vgg11"}, {"width", 1.0}};
  sgs::Options o(sgs::resolve_object(keys, "model", reg.get("model", "vgg11").schema, {"name"}), "model");
  sgs::ConvFactory plain;
  torch::manual_seed(0);
  auto model = reg.factory<sgs::ModelKind>("vgg11")(o, {3, 10, 32, 32}, plain);
  torch::NoGradGuard no_grad;
  // BatchNorm running statistics = this batch's, as after training on such images.
  for (auto& m : model->modules(/*include_self=*/false))
    if (auto* bn = dynamic_cast<sgs::BatchNorm2dImpl*>(m.get())) bn->options.momentum(1.0);
  model->train();
  model->forward(images);
  model->eval();
  std::shared_ptr<torch::nn::SequentialImpl> features;
  for (const auto& item : model->named_children())
    if (item.key() == "features") features = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(item.value());
  TORCH_CHECK(features, "bench_dependence: vgg11 has no 'features' Sequential");
  const std::vector<std::vector<int64_t>> wanted = {{64, 32, 32}, {128, 16, 16}, {256, 8, 8}, {512, 4, 4}};
  std::vector<Layer> layers(wanted.size());
  auto x = images;
  std::vector<std::string> names;
  for (const auto& item : features->named_children()) names.push_back(item.key());
  size_t i = 0;
  for (auto it = features->begin(); it != features->end(); ++it, ++i) {
    x = it->forward(x);
    if (!features->ptr(i)->as<torch::nn::ReLU>() || i + 1 >= features->size()) continue;
    for (size_t w = 0; w < wanted.size(); ++w) {
      if (layers[w].map.defined() || x.sizes().slice(1) != torch::IntArrayRef(wanted[w])) continue;
      layers[w].name = "features." + names[i + 1];
      layers[w].kind = features->ptr(i + 1)->as<torch::nn::MaxPool2d>() ? "max-pool" : "3x3 conv";
      layers[w].map = x.contiguous().clone();
    }
  }
  for (auto& l : layers) TORCH_CHECK(l.map.defined(), "bench_dependence: a wanted shape was not found in vgg11");
  return layers;
}

void write_maps(const std::string& path, const std::vector<Layer>& layers) {
  H5::H5File file(path, H5F_ACC_TRUNC);
  for (const auto& l : layers) {
    std::vector<hsize_t> dims(l.map.sizes().begin(), l.map.sizes().end());
    auto ds = file.createDataSet(l.name, H5::PredType::NATIVE_FLOAT, H5::DataSpace(4, dims.data()));
    ds.write(l.map.data_ptr<float>(), H5::PredType::NATIVE_FLOAT);
  }
}

double seconds_of(const std::function<void()>& f) {
  auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void time_ours(std::vector<Layer>& layers, const sgs::ConvSpec& spec, const torch::Device& device, int threads,
               int repeats) {
  sgs::dependence::Options o;  // mutual information, k = 5, no diagonal removal
  const auto ps = passes(device, threads);
  for (size_t pass = 0; pass < ps.size(); ++pass) {
    at::set_num_threads(ps[pass].threads);
    for (auto& l : layers) {
      const auto& input = ps[pass].on_device ? l.padded : l.padded_cpu;
      if (input.is_cuda()) sgs::dependence::compute(input, spec, o);  // warm-up: a GPU's first kernels load lazily
      double& best = pass == 0 ? l.ours_device : l.ours_second;
      for (int r = 0; r < repeats; ++r)
        best = std::min(best, seconds_of([&] {
          auto result = sgs::dependence::compute(input, spec, o);
          sgs::bench::synchronize(input.device());
          if (pass == 0) {
            l.scaling = result.scaling.cpu();
            l.per_channel = result.per_channel.cpu();
          } else {
            l.second_scaling = result.scaling.cpu();
          }
        }));
    }
  }
  at::set_num_threads(threads);
}

std::string run_command(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("cannot run: " + cmd);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  if (status != 0) throw std::runtime_error("failed (status " + std::to_string(status) + "): " + cmd);
  return out;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string authors = arg(argc, argv, "authors", "");
  const int64_t images = std::stoll(arg(argc, argv, "images", "256"));
  const int repeats = std::stoi(arg(argc, argv, "repeats", "5"));
  const int authors_repeats = std::stoi(arg(argc, argv, "authors-repeats", "3"));
  const std::string python = arg(argc, argv, "python", "/usr/bin/python3");
  int threads = std::stoi(arg(argc, argv, "threads", "0"));
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const torch::Device device = sgs::bench::device_arg(argc, argv);
  std::string features = arg(argc, argv, "features", "");
  const bool keep_features = !features.empty();
  if (!keep_features)
    features = (std::filesystem::temp_directory_path() / ("sgs_bench_dependence_" + std::to_string(getpid()) + ".h5"))
                   .string();
  at::set_num_threads(threads);

  auto layers = vgg11_maps(synthetic_images(images));
  sgs::ConvSpec spec;  // 3x3, padding 1, dilation 1
  spec.kernel = {3, 3};
  spec.padding = {1, 1};
  for (auto& l : layers) {
    l.padded_cpu = sgs::pad_input(l.map, spec).contiguous();
    l.padded = l.padded_cpu.to(device);
  }
  if (!authors.empty() || keep_features) write_maps(features, layers);

  std::printf("mutual information, k = 5, no diagonal removal; VGG-11 (width 1) BN-ReLU maps of %lld synthetic "
              "CIFAR images, zero-padded by 1\n",
              static_cast<long long>(images));
  const auto ps = passes(device, threads);
  const int rounds = authors.empty() ? 1 : 2;
  if (device.is_cuda())
    std::printf("ours: sgs::dependence::compute, best of %d, on %s (result to the host timed) and on the CPU with %d "
                "threads (%u cores)\n",
                rounds * repeats, device.str().c_str(), threads, std::thread::hardware_concurrency());
  else
    std::printf("ours: sgs::dependence::compute, best of %d, %d threads and 1 thread (%u cores)\n", rounds * repeats,
                threads, std::thread::hardware_concurrency());
  time_ours(layers, spec, device, threads, repeats);
  sgs::Json theirs;
  if (!authors.empty()) {
    std::printf("theirs: feature_map_nmik of %s/dependence.py, best of %d, 1 thread (numpy + fast_histogram)\n",
                authors.c_str(), authors_repeats);
    std::fflush(stdout);
    std::string names;
    for (const auto& l : layers) names += (names.empty() ? "" : ",") + l.name;
    const std::string cmd = python + " " + shell_quote(std::string(SGS_SOURCE_DIR) + "/bench/authors_dependence.py") +
                            " --authors " + shell_quote(authors) + " --features " + shell_quote(features) +
                            " --layers " + names + " --repeats " + std::to_string(authors_repeats);
    theirs = sgs::Json::parse(run_command(cmd));
    for (auto& l : layers)
      for (const auto& t : theirs["layers"]) {
        if (t["name"] != l.name) continue;
        l.theirs = t["seconds"].get<double>();
        l.their_scaling = torch::full({3, 3}, NAN, torch::kFloat64);
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j)
            if (!t["scaling"][i][j].is_null()) l.their_scaling[i][j] = t["scaling"][i][j].get<double>();
      }
    time_ours(layers, spec, device, threads, repeats);  // again after theirs: both ends of their run
  }
  if (!keep_features) std::filesystem::remove(features);

  const std::string first = ps[0].label, second = ps[1].label;
  std::printf("\n%-12s %-9s %-16s %12s %12s %12s %10s %10s %10s %10s%s\n", "layer input", "of", "map (padded)",
              ("ours " + first + " s").c_str(), ("ours " + second + " s").c_str(), "authors s",
              ("x (" + first + ")").c_str(), ("x (" + second + ")").c_str(), "max|dG|", "f32 |dG|",
              device.is_cuda() ? "   cuda-cpu |dG|" : "");
  double all = 0, one = 0, them = 0, worst = 0, worst32 = 0, worst_device = 0;
  for (const auto& l : layers) {
    char shape[64];
    std::snprintf(shape, sizeof shape, "%lldx%lldx%lldx%lld", static_cast<long long>(l.padded.size(0)),
                  static_cast<long long>(l.padded.size(1)), static_cast<long long>(l.padded.size(2)),
                  static_cast<long long>(l.padded.size(3)));
    double diff = NAN, diff32 = NAN;
    if (l.their_scaling.defined()) {
      diff = (l.scaling - l.their_scaling).abs().max().item<double>();
      worst = std::max(worst, std::isnan(diff) ? INFINITY : diff);
      // Their matrices are float32: our k-transformed values reduced the way theirs are.
      auto g = sgs::dependence::k_transform(l.per_channel, 5.0).to(torch::kFloat32).nanmean(0);
      diff32 = ((g / g.mean()).to(torch::kFloat64) - l.their_scaling).abs().max().item<double>();
      worst32 = std::max(worst32, std::isnan(diff32) ? INFINITY : diff32);
    }
    std::string device_diff;
    if (device.is_cuda()) {
      // NaN entries (constant channels everywhere) must agree too.
      const auto nan_differs = (l.scaling.isnan() != l.second_scaling.isnan()).any().item<bool>();
      const double d = nan_differs ? INFINITY : (l.scaling - l.second_scaling).abs().nan_to_num(0).max().item<double>();
      worst_device = std::max(worst_device, d);
      char buf[32];
      std::snprintf(buf, sizeof buf, " %16.1e", d);
      device_diff = buf;
    }
    std::printf("%-12s %-9s %-16s %12.4f %12.4f %12.4f %10.1f %10.1f %10.1e %10.1e%s\n", l.name.c_str(),
                l.kind.c_str(), shape, l.ours_device, l.ours_second, l.theirs, l.theirs / l.ours_device,
                l.theirs / l.ours_second, diff, diff32, device_diff.c_str());
    all += l.ours_device, one += l.ours_second, them += l.theirs;
  }
  char total_device[32] = "";
  if (device.is_cuda()) std::snprintf(total_device, sizeof total_device, " %16.1e", worst_device);
  std::printf("%-12s %-9s %-16s %12.4f %12.4f %12.4f %10.1f %10.1f %10.1e %10.1e%s\n", "total", "", "", all, one,
              them, them / all, them / one, authors.empty() ? NAN : worst, authors.empty() ? NAN : worst32,
              total_device);
  if (device.is_cuda())
    std::printf("\nours on %s against ours on the CPU (%d threads): %.1fx faster; the two scalings differ by at most "
                "%.1e (cuda-cpu |dG|)\n",
                device.str().c_str(), threads, one / all, worst_device);
  if (!authors.empty())
    std::printf("%sspeed-up in total: %.1fx (%s), %.1fx (%s) (target: >= 10x)\n"
                "max|dG|: our scaling (float64) against theirs (float32 tensors); f32: ours reduced in float32 as "
                "theirs\n",
                device.is_cuda() ? "" : "\n", them / all, first.c_str(), them / one, second.c_str());
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_dependence: " << e.what() << "\n";
  return 1;
}
