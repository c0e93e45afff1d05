// Loader: worker threads claim whole batches in order, up to `prefetch`
// ahead of the one next() waits for, and build them with Split::fill straight
// into the batch tensor. Which worker builds a batch never changes its
// content: the epoch's order and every example's seed depend only on
// (seed, epoch, position).
#include <sgs/errors.h>
#include <sgs/loader.h>
#include <sgs/seed.h>

#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

namespace sgs {

namespace {

constexpr uint64_t kShuffleTag = 0x53485546464c45ULL;  // "SHUFFLE"

// The epoch's visiting order: a Fisher-Yates shuffle from (seed, epoch).
std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  if (!shuffle) return order;
  uint64_t state = mix_seed(seed ^ kShuffleTag, {static_cast<uint64_t>(epoch)});
  for (int64_t i = n - 1; i > 0; --i) {
    state = splitmix64(state);
    const auto j = static_cast<int64_t>((static_cast<unsigned __int128>(state) * static_cast<uint64_t>(i + 1)) >> 64);
    std::swap(order[i], order[j]);
  }
  return order;
}

}  // namespace

uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t position) {
  return mix_seed(seed, {static_cast<uint64_t>(epoch), static_cast<uint64_t>(position)});
}

struct Loader::Impl {
  // A batch built by a worker, or what it threw.
  struct Built {
    std::optional<Batch> batch;
    std::exception_ptr error;
  };

  std::shared_ptr<const Split> split;
  LoaderOptions options;
  std::array<int64_t, 3> shape{};

  std::mutex mutex;
  std::condition_variable work_ready, batch_ready;
  bool stopping = false;
  // The current epoch; `generation` tells a worker its batch was abandoned.
  uint64_t generation = 0;
  int64_t epoch = -1;
  std::shared_ptr<const std::vector<int64_t>> order;
  int64_t num_batches = 0;
  int64_t next_claim = 0;  // the next batch a worker takes
  int64_t next_out = 0;    // the next batch next() returns
  std::map<int64_t, Built> done;
  std::vector<std::thread> workers;

  // Positions [lo, hi) of the epoch that batch `b` of this rank holds. A full
  // global batch gives rank r positions [r B, (r+1) B); a last, partial one of
  // m examples is split evenly, rank r taking [r m / W, (r+1) m / W).
  std::pair<int64_t, int64_t> positions(int64_t b) const {
    const int64_t global = options.batch_size * options.world_size;
    const int64_t start = b * global;
    const int64_t m = std::min(global, split->size() - start);
    if (m == global) return {start + options.rank * options.batch_size, start + (options.rank + 1) * options.batch_size};
    return {start + options.rank * m / options.world_size, start + (options.rank + 1) * m / options.world_size};
  }

  Batch build(const std::vector<int64_t>& order_, int64_t epoch_, int64_t b) const {
    auto [lo, hi] = positions(b);
    const int64_t n = hi - lo;
    const int64_t example = shape[0] * shape[1] * shape[2];
    Batch batch;
    auto opts = torch::TensorOptions().pinned_memory(options.pin_memory);
    // Channels-last: each example is filled in CHW order into scratch space,
    // then transposed into its NHWC slot (here, in the worker, not per step).
    const bool transpose = options.channels_last && shape[0] > 1;
    batch.images = torch::empty({n, shape[0], shape[1], shape[2]},
                                opts.dtype(torch::kFloat32)
                                    .memory_format(options.channels_last ? torch::MemoryFormat::ChannelsLast
                                                                         : torch::MemoryFormat::Contiguous));
    batch.labels = torch::empty({n}, opts.dtype(torch::kInt64));
    float* images = batch.images.data_ptr<float>();
    int64_t* labels = batch.labels.data_ptr<int64_t>();
    std::vector<float> chw(transpose ? example : 0);
    const int64_t channels = shape[0], pixels = shape[1] * shape[2];
    for (int64_t i = 0; i < n; ++i) {
      const int64_t p = lo + i;
      float* slot = images + i * example;
      labels[i] = split->fill(order_[p], options.augment, sample_seed(options.seed, epoch_, p),
                              transpose ? chw.data() : slot);
      if (!transpose) continue;
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t q = 0; q < pixels; ++q) slot[q * channels + c] = chw[c * pixels + q];
    }
    return batch;
  }

  void work() {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      work_ready.wait(lock, [&] {
        return stopping || (epoch >= 0 && next_claim < num_batches && next_claim < next_out + options.prefetch);
      });
      if (stopping) return;
      const int64_t b = next_claim++;
      const uint64_t gen = generation;
      const int64_t ep = epoch;
      auto ord = order;
      lock.unlock();
      Built built;
      try {
        built.batch = build(*ord, ep, b);
      } catch (...) {
        built.error = std::current_exception();
      }
      lock.lock();
      if (gen == generation && !stopping) {
        done.emplace(b, std::move(built));
        batch_ready.notify_all();
      }
    }
  }
};

Loader::Loader(std::shared_ptr<const Split> split, LoaderOptions options) : impl_(std::make_unique<Impl>()) {
  auto check = [](bool ok, const std::string& what) {
    if (!ok) throw ConfigError("loader: " + what);
  };
  check(split != nullptr, "no split to load (null)");
  check(options.batch_size >= 1, "batch_size must be >= 1, got " + std::to_string(options.batch_size));
  check(options.workers >= 0, "workers must be >= 0, got " + std::to_string(options.workers));
  check(options.prefetch >= 1, "prefetch must be >= 1, got " + std::to_string(options.prefetch));
  check(options.world_size >= 1, "world_size must be >= 1, got " + std::to_string(options.world_size));
  check(options.rank >= 0 && options.rank < options.world_size,
        "rank must be in [0, world_size), got " + std::to_string(options.rank));
  impl_->split = std::move(split);
  impl_->options = options;
  impl_->shape = impl_->split->shape();
  for (int64_t w = 0; w < options.workers; ++w) impl_->workers.emplace_back([impl = impl_.get()] { impl->work(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->work_ready.notify_all();
  for (auto& t : impl_->workers) t.join();
}

void Loader::start_epoch(int64_t epoch) {
  Impl& s = *impl_;
  auto order = std::make_shared<const std::vector<int64_t>>(
      epoch_order(s.split->size(), s.options.shuffle, s.options.seed, epoch));
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    ++s.generation;
    s.epoch = epoch;
    s.order = std::move(order);
    s.num_batches = batches_per_epoch();
    s.next_claim = 0;
    s.next_out = 0;
    s.done.clear();
  }
  s.work_ready.notify_all();
}

std::optional<Batch> Loader::next() {
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lock(s.mutex);
  if (s.epoch < 0) throw std::logic_error("loader: next() before start_epoch()");
  if (s.next_out >= s.num_batches) return std::nullopt;
  if (s.workers.empty()) {
    const int64_t b = s.next_out++;
    auto order = s.order;
    const int64_t epoch = s.epoch;
    lock.unlock();
    return s.build(*order, epoch, b);
  }
  const int64_t b = s.next_out;
  s.batch_ready.wait(lock, [&] { return s.done.count(b) > 0; });
  Impl::Built built = std::move(s.done.at(b));
  s.done.erase(b);
  ++s.next_out;
  lock.unlock();
  s.work_ready.notify_all();
  if (built.error) std::rethrow_exception(built.error);
  return std::move(built.batch);
}

int64_t Loader::batches_per_epoch() const {
  const int64_t n = impl_->split->size();
  const int64_t global = impl_->options.batch_size * impl_->options.world_size;
  return impl_->options.drop_last ? n / global : (n + global - 1) / global;
}

const Split& Loader::split() const { return *impl_->split; }

}  // namespace sgs
