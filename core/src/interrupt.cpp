#include <sgs/interrupt.h>

#include <atomic>
#include <csignal>

namespace sgs {

namespace {

std::atomic<int> g_caught{0};
static_assert(std::atomic<int>::is_always_lock_free, "the handler may only touch a lock-free atomic");

extern "C" void on_interrupt(int sig) { g_caught.store(sig); }

}  // namespace

void catch_interrupts() {
  g_caught.store(0);
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int caught_interrupt() { return g_caught.load(); }

void clear_interrupt() { g_caught.store(0); }

}  // namespace sgs
