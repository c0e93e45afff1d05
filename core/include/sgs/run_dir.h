// A run directory has one writer: whoever trains it (sgs run, or sgs suite
// for the run it starts) holds DIR/.lock, an flock, for as long as it works
// there, with its pid written in the file so that a refusal can name it.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace sgs {

// The lock of a run directory (created if missing). Move-only; released when
// destroyed or when its process exits.
class RunDirLock {
 public:
  RunDirLock() = default;
  RunDirLock(RunDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  RunDirLock& operator=(RunDirLock&& other) noexcept;
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;
  ~RunDirLock() { release(); }

  // Takes the lock, or returns an empty one when another process holds it.
  static RunDirLock try_take(const std::filesystem::path& dir);
  // Takes the lock, or throws (std::runtime_error) naming the holder's pid.
  // A lock handed down by the parent (sgs suite: kLockFdVariable) is adopted.
  static RunDirLock take(const std::filesystem::path& dir);

  bool held() const { return fd_ >= 0; }
  // The descriptor, for handing the lock to a child process (sgs suite):
  // clear its close-on-exec flag in the child and set kLockFdVariable.
  int fd() const { return fd_; }
  void release() noexcept;
  // Gives up ownership: the caller closes the descriptor (-1 when not held).
  int detach() noexcept {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

  // The environment variable that tells a child which inherited fd holds
  // its run directory's lock.
  static constexpr const char* kLockFdVariable = "SGS_RUN_LOCK_FD";

 private:
  explicit RunDirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// True when another process holds the directory's lock.
bool run_dir_locked_elsewhere(const std::filesystem::path& dir);

// The pid written in DIR/.lock by its holder (0 when unknown).
pid_t run_dir_lock_holder(const std::filesystem::path& dir);

}  // namespace sgs
