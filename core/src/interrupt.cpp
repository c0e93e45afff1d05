#include <sgs/interrupt.h>

#include <atomic>
#include <csignal>

#include <unistd.h>

namespace sgs {

namespace {

std::atomic<int> g_caught{0};
std::atomic<bool> g_exit_now{false};
static_assert(std::atomic<int>::is_always_lock_free, "the handler may only touch a lock-free atomic");
static_assert(std::atomic<bool>::is_always_lock_free, "the handler may only touch a lock-free atomic");

extern "C" void on_interrupt(int sig) {
  if (g_exit_now.load()) _exit(128 + sig);  // async-signal-safe; nothing to flush yet
  g_caught.store(sig);
}

void install() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace

void catch_interrupts() {
  g_caught.store(0);
  g_exit_now.store(false);
  install();
}

void exit_on_interrupts() {
  g_caught.store(0);
  g_exit_now.store(true);
  install();
}

void latch_interrupts() { g_exit_now.store(false); }

int caught_interrupt() { return g_caught.load(); }

}  // namespace sgs
