#include "app/launch/launcher.h"
#include "app/process.h"

#include <sgs/errors.h>
#include <sgs/interrupt.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace sgs {

std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  return args;
}

namespace {

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("sgs run --nproc: socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    throw std::runtime_error(std::string("sgs run --nproc: cannot find a free port: ") + std::strerror(errno));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

int launch_local_ranks(int nproc, const std::vector<std::string>& argv, std::chrono::milliseconds grace) {
  if (nproc < 1) throw ConfigError("--nproc: must be >= 1, got " + std::to_string(nproc));
  if (argv.empty()) throw ConfigError("--nproc: no command to run");
  const int port = free_port();
  catch_interrupts();
  std::vector<pid_t> pids(static_cast<size_t>(nproc), -1);
  for (int r = 0; r < nproc; ++r) {
    ChildSpec child;
    child.binary = "/proc/self/exe";
    child.argv = argv;
    const std::string rank = std::to_string(r), world = std::to_string(nproc);
    child.env = {{"RANK", rank},           {"WORLD_SIZE", world},         {"LOCAL_RANK", rank},
                 {"LOCAL_WORLD_SIZE", world}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)}};
    child.null_stdin = r > 0;
    child.die_with_parent = true;  // a launcher that dies takes its ranks along
    child.exec_failed = "sgs run --nproc: cannot start rank " + rank + "\n";
    pids[static_cast<size_t>(r)] = spawn(child);
  }
  int alive = nproc, result = 0, forwarded = 0;
  bool failed = false;
  std::chrono::steady_clock::time_point kill_at{};
  while (alive > 0) {
    const int sig = caught_interrupt();
    if (sig != 0 && sig != forwarded) {  // pass SIGINT/SIGTERM on: the ranks checkpoint and stop together
      forwarded = sig;
      signal_all(pids, sig);
    }
    if (failed && std::chrono::steady_clock::now() >= kill_at) signal_all(pids, SIGKILL);
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid == 0 || (pid < 0 && errno == EINTR)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (pid < 0) break;
    int rank = -1;
    for (int r = 0; r < nproc; ++r)
      if (pids[static_cast<size_t>(r)] == pid) rank = r;
    if (rank < 0) continue;
    pids[static_cast<size_t>(rank)] = -1;
    --alive;
    const int code = exit_code(status);
    if (code != 0 && !failed) {
      result = code;
      // An interruption every rank saw is not a failure of one rank.
      const bool interrupted = forwarded != 0 && code == 128 + forwarded;
      if (!interrupted) {
        failed = true;
        std::fprintf(stderr, "sgs run --nproc: rank %d: %s; stopping the other ranks\n", rank,
                     describe_exit(status).c_str());
        signal_all(pids, SIGTERM);
        kill_at = std::chrono::steady_clock::now() + grace;
      }
    }
  }
  return result;
}

}  // namespace sgs
