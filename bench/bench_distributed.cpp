// Data-parallel training throughput of the quick model (VGG-11 at width 1/4 on
// 1x28x28 images, 10 classes, batch 128 per rank, SGD with momentum) with 1
// and more ranks on this machine, each rank one intra-op thread, over c10d
// Gloo on loopback: the step the trainer runs (forward, backward, bucketed
// gradient all-reduce, optimizer step) on fixed random batches.
//
//   bench_distributed [--ranks 1,2] [--steps 20] [--warmup 3] [--rounds 2] [--batch 128]
//
// Rounds alternate the rank counts; each count's best round is reported.
#include <sgs/distributed.h>

#include "app/launch/launcher.h"
#include <sgs/model.h>
#include <sgs/registry.h>

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <unistd.h>

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::vector<int> ranks{1, 2};
  int steps = 20, warmup = 3, rounds = 2;
  int64_t batch = 128;
  std::string worker_result;  // set in the ranks
};

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> v;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) v.push_back(std::stoi(item));
  return v;
}

// One rank: times `steps` training steps after `warmup`; rank 0 writes
// "images_per_second allreduce_fraction" (all ranks' images) to the result file.
int worker(const Args& a) {
  at::set_num_threads(1);
  const sgs::World world = sgs::world_from_environment();
  auto comm = sgs::connect(world, torch::kCPU);
  torch::manual_seed(0);
  sgs::ConvFactory plain;
  sgs::Options options(sgs::Json{{"width", 0.25}}, "model");
  auto model = sgs::Registry::global().factory<sgs::ModelKind>("vgg11")(options, sgs::ModelSpec{1, 10, 28, 28}, plain);
  sgs::broadcast_module(*model, *comm);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(5e-4));
  torch::manual_seed(1 + static_cast<uint64_t>(world.rank));
  auto x = torch::randn({a.batch, 1, 28, 28});
  auto y = torch::randint(0, 10, {a.batch}, torch::kInt64);
  auto params = model->parameters();
  double reduce_seconds = 0;
  Clock::time_point start;
  for (int s = 0; s < a.warmup + a.steps; ++s) {
    if (s == a.warmup) {
      auto barrier = torch::zeros({1});
      comm->all_reduce(barrier, sgs::ReduceOp::Sum);
      start = Clock::now();
      reduce_seconds = 0;
    }
    sgd.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    if (world.world_size > 1) {
      auto t0 = Clock::now();
      sgs::all_reduce_gradients(params, *comm, 1.0 / world.world_size);
      reduce_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    }
    sgd.step();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (world.rank == 0) {
    std::ofstream out(a.worker_result);
    out << static_cast<double>(a.steps * a.batch * world.world_size) / seconds << " " << reduce_seconds / seconds
        << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(k + ": expected a value");
      return argv[++i];
    };
    if (k == "--ranks") a.ranks = parse_list(value());
    else if (k == "--steps") a.steps = std::stoi(value());
    else if (k == "--warmup") a.warmup = std::stoi(value());
    else if (k == "--rounds") a.rounds = std::stoi(value());
    else if (k == "--batch") a.batch = std::stoll(value());
    else if (k == "--worker-result") a.worker_result = value();
    else {
      std::cerr << "usage: bench_distributed [--ranks 1,2] [--steps N] [--warmup N] [--rounds N] [--batch B]\n";
      return 2;
    }
  }
  try {
    if (!a.worker_result.empty()) return worker(a);
    if (!sgs::distributed_available()) throw std::runtime_error("this build has no c10d Gloo process group");
    std::map<int, std::pair<double, double>> best;  // ranks -> (images/s, all-reduce fraction)
    const std::string result = "/tmp/bench_distributed_" + std::to_string(getpid()) + ".txt";
    for (int round = 0; round < a.rounds; ++round) {
      for (int n : a.ranks) {
        std::vector<std::string> args{argv[0],         "--worker-result",        result,
                                      "--steps",       std::to_string(a.steps),  "--warmup",
                                      std::to_string(a.warmup), "--batch",       std::to_string(a.batch)};
        if (int rc = sgs::launch_local_ranks(n, args); rc != 0)
          throw std::runtime_error(std::to_string(n) + " ranks failed with status " + std::to_string(rc));
        std::ifstream in(result);
        double ips = 0, frac = 0;
        in >> ips >> frac;
        std::fprintf(stderr, "round %d: %d rank(s) %.0f img/s\n", round + 1, n, ips);
        if (ips > best[n].first) best[n] = {ips, frac};
      }
    }
    std::remove(result.c_str());
    const double base = best.count(1) ? best[1].first : best.begin()->second.first;
    std::printf("VGG-11 x0.25, 1x28x28, batch %lld per rank, 1 thread per rank, Gloo on loopback, best of %d rounds x %d "
                "steps\n\n",
                static_cast<long long>(a.batch), a.rounds, a.steps);
    std::printf("| ranks | img/s (all ranks) | img/s per rank | vs 1 rank | all-reduce share of the step |\n");
    std::printf("|---|---|---|---|---|\n");
    for (const auto& [n, r] : best)
      std::printf("| %d | %.0f | %.0f | %.2f | %.1f %% |\n", n, r.first, r.first / n, r.first / base, 100 * r.second);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "bench_distributed: " << e.what() << "\n";
    return 1;
  }
}
