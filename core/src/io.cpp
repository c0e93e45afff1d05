#include <sgs/io.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace fs = std::filesystem;

namespace sgs {

fs::path temporary_path(const fs::path& target) {
  fs::path tmp = target;
  // Per host and process: processes of one suite on several nodes share a folder.
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  tmp += ".tmp." + std::string(host) + "." + std::to_string(::getpid());
  return tmp;
}

void remove_temporaries(const fs::path& target) noexcept {
  const std::string prefix = target.filename().string() + ".tmp";
  std::error_code ec;
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name == prefix || name.rfind(prefix + ".", 0) == 0) remove_quietly(it->path());
  }
}

void throw_io_error(const fs::path& path, const std::string& what, int error_number) {
  throw IoError(path.string() + ": " + what + ": " + std::strerror(error_number));
}

void remove_quietly(const fs::path& path) noexcept {
  std::error_code ec;
  fs::remove(path, ec);
}

namespace {

void sync_fd_of(const fs::path& path, int flags, const char* what) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw_io_error(path, what, errno);
  if (::fsync(fd) != 0 && errno != EINVAL) {  // EINVAL: a file system that cannot sync (nothing to wait for)
    int err = errno;
    ::close(fd);
    throw_io_error(path, what, err);
  }
  ::close(fd);
}

}  // namespace

void sync_file(const fs::path& path) { sync_fd_of(path, O_RDONLY, "cannot sync to disk"); }

void sync_directory(const fs::path& dir) {
  sync_fd_of(dir.empty() ? fs::path(".") : dir, O_RDONLY | O_DIRECTORY, "cannot sync the directory");
}

void replace_atomically(const fs::path& target, const std::function<void(const fs::path& tmp)>& write) {
  const fs::path tmp = temporary_path(target);
  try {
    write(tmp);
    sync_file(tmp);
    if (::rename(tmp.c_str(), target.c_str()) != 0) throw_io_error(target, "cannot replace the file", errno);
  } catch (...) {
    remove_quietly(tmp);
    throw;
  }
  sync_directory(target.parent_path());
}

void write_file_atomically(const fs::path& target, std::string_view content) {
  replace_atomically(target, [&](const fs::path& tmp) {
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw_io_error(target, "cannot write", errno);
    const char* p = content.data();
    std::size_t left = content.size();
    while (left > 0) {
      ssize_t n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        throw_io_error(target, "cannot write", err);
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0) throw_io_error(target, "cannot write", errno);
  });
}

std::string read_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_io_error(path, "cannot read", errno);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw_io_error(path, "cannot read", err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace sgs
