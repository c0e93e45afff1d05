#include <sgs/io.h>
#include <sgs/run_dir.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>

namespace fs = std::filesystem;

namespace sgs {

namespace {

fs::path lock_file(const fs::path& dir) { return dir / ".lock"; }

void write_pid(int fd) {
  const std::string text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) < 0) {
    // The pid only makes messages better; the lock holds without it.
  }
}

// The inherited descriptor named by kLockFdVariable, when it is this
// directory's lock file.
int inherited_lock(const fs::path& dir) {
  const char* v = std::getenv(RunDirLock::kLockFdVariable);
  if (v == nullptr || *v == '\0') return -1;
  char* end = nullptr;
  long fd = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || fd < 0) return -1;
  struct stat held {}, file {};
  if (::fstat(static_cast<int>(fd), &held) != 0 || ::stat(lock_file(dir).c_str(), &file) != 0) return -1;
  if (held.st_dev != file.st_dev || held.st_ino != file.st_ino) return -1;
  ::unsetenv(RunDirLock::kLockFdVariable);  // not for this process's own children
  ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  return static_cast<int>(fd);
}

}  // namespace

RunDirLock& RunDirLock::operator=(RunDirLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

void RunDirLock::release() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

RunDirLock RunDirLock::try_take(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(dir.string() + ": cannot create the run directory: " + ec.message());
  const fs::path file = lock_file(dir);
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw_io_error(file, "cannot open the run directory's lock", errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return RunDirLock();
  }
  write_pid(fd);
  return RunDirLock(fd);
}

RunDirLock RunDirLock::take(const fs::path& dir) {
  int inherited = inherited_lock(dir);
  if (inherited >= 0) {
    write_pid(inherited);
    return RunDirLock(inherited);
  }
  RunDirLock lock = try_take(dir);
  if (!lock.held()) {
    const pid_t holder = run_dir_lock_holder(dir);
    throw std::runtime_error(dir.string() + ": another process" +
                             (holder > 0 ? " (pid " + std::to_string(holder) + ")" : std::string()) +
                             " is writing this run directory; wait for it or choose another --out");
  }
  return lock;
}

bool run_dir_locked_elsewhere(const fs::path& dir) {
  if (!fs::exists(lock_file(dir))) return false;
  int fd = ::open(lock_file(dir).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool busy = ::flock(fd, LOCK_EX | LOCK_NB) != 0;
  ::close(fd);
  return busy;
}

pid_t run_dir_lock_holder(const fs::path& dir) {
  int fd = ::open(lock_file(dir).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[32] = {};
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  return static_cast<pid_t>(std::strtol(buf, nullptr, 10));
}

}  // namespace sgs
