// The trainer's progress output on stderr: a live bar on a terminal, a line
// per epoch otherwise. Output to a closed pipe is dropped (sgs ignores
// SIGPIPE), so `sgs run ... | head` does not stop training.
#pragma once

#include <sgs/trainer.h>

#include <chrono>
#include <string>

namespace sgs {

using Clock = std::chrono::steady_clock;

// "mm:ss" or "h:mm:ss"; "--:--" when unknown.
std::string format_duration(double seconds);

class Progress {
 public:
  Progress(RunOptions::Progress mode, bool quiet, double every_seconds = 0);
  void step(int64_t epoch, int64_t epochs, int64_t batch, int64_t batches, double loss, double acc, double ips);
  void set_images_per_batch(double n) { images_per_batch_ = n; }
  void epoch_end(const std::string& line);
  void message(const std::string& line);

 private:
  RunOptions::Progress mode_;
  double every_ = 0;  // Lines: seconds between lines within an epoch; 0 = none
  Clock::time_point last_{};
  double images_per_batch_ = 1;
};

}  // namespace sgs
