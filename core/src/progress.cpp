#include "progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace sgs {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  auto t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(t / 3600),
                  static_cast<long long>(t / 60 % 60), static_cast<long long>(t % 60));
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", static_cast<long long>(t / 60), static_cast<long long>(t % 60));
  return buf;
}

Progress::Progress(RunOptions::Progress mode, bool quiet, double every_seconds) : every_(every_seconds) {
  if (quiet) mode = RunOptions::Progress::None;
  if (mode == RunOptions::Progress::Auto)
    mode = isatty(STDERR_FILENO) ? RunOptions::Progress::Bar : RunOptions::Progress::Lines;
  mode_ = mode;
}

void Progress::step(int64_t epoch, int64_t epochs, int64_t batch, int64_t batches, double loss, double acc,
                    double ips) {
  if (mode_ == RunOptions::Progress::Lines && every_ > 0) {
    auto now = Clock::now();
    if (last_ == Clock::time_point{}) last_ = now;  // the first line after `every_` seconds
    if (batch == batches || now - last_ < std::chrono::duration<double>(every_)) return;
    last_ = now;
    // The run's ETA: the steps left at the current speed (evaluation not counted).
    const double steps_left = static_cast<double>((epochs - epoch) * batches + (batches - batch));
    const double eta = ips > 0 ? steps_left * images_per_batch_ / ips : NAN;
    std::fprintf(stderr, "epoch %lld/%lld step %lld/%lld loss %.4f acc %.1f%% %.0f img/s ETA %s\n",
                 static_cast<long long>(epoch), static_cast<long long>(epochs), static_cast<long long>(batch),
                 static_cast<long long>(batches), loss, 100 * acc, ips, format_duration(eta).c_str());
    std::fflush(stderr);
    return;
  }
  if (mode_ != RunOptions::Progress::Bar) return;
  auto now = Clock::now();
  if (batch != batches && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  const int width = 24;
  int filled = static_cast<int>(width * batch / std::max<int64_t>(1, batches));
  std::string bar(filled, '=');
  if (filled < width) bar += '>' + std::string(width - filled - 1, ' ');
  double eta = ips > 0 ? static_cast<double>(batches - batch) * images_per_batch_ / ips : NAN;
  std::fprintf(stderr, "\repoch %lld/%lld [%s] %lld/%lld loss %.4f acc %5.1f%% %6.0f img/s ETA %s \x1b[K",
               static_cast<long long>(epoch), static_cast<long long>(epochs), bar.c_str(),
               static_cast<long long>(batch), static_cast<long long>(batches), loss, 100 * acc, ips,
               format_duration(eta).c_str());
  std::fflush(stderr);
}

void Progress::epoch_end(const std::string& line) {
  if (mode_ == RunOptions::Progress::None) return;
  if (mode_ == RunOptions::Progress::Bar) std::fprintf(stderr, "\r\x1b[K");
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

void Progress::message(const std::string& line) {
  if (mode_ == RunOptions::Progress::None) return;
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace sgs
