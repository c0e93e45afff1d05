#include "app/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace sgs {

namespace {

std::vector<std::string> child_environment(const std::vector<std::pair<std::string, std::string>>& set) {
  std::vector<std::string> out;
  for (const auto& [name, value] : set) out.push_back(name + "=" + value);
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    bool replaced = false;
    for (const auto& kv : set) replaced = replaced || entry.rfind(kv.first + "=", 0) == 0;
    if (!replaced) out.push_back(entry);
  }
  return out;
}

std::vector<char*> pointers(std::vector<std::string>& items) {
  std::vector<char*> out;
  for (auto& s : items) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

pid_t spawn(const ChildSpec& spec) {
  std::vector<std::string> args = spec.argv, env = child_environment(spec.env);
  std::vector<char*> argv = pointers(args), envp = pointers(env);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  if (pid > 0) {
    if (spec.new_group) setpgid(pid, pid);  // here too: no race with a signal sent right after
    return pid;
  }
  // The child: async-signal-safe calls only.
  if (spec.new_group) setpgid(0, 0);
  if (spec.die_with_parent) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(128 + SIGTERM);  // the parent died before prctl
  }
  if (spec.output_fd >= 0) {
    dup2(spec.output_fd, 1);
    dup2(spec.output_fd, 2);
  }
  if (spec.error_fd >= 0) dup2(spec.error_fd, 2);
  if (spec.null_stdin) {
    const int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
  }
  if (spec.inherit_fd >= 0) fcntl(spec.inherit_fd, F_SETFD, 0);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGINT, &dfl, nullptr);
  sigaction(SIGTERM, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execve(spec.binary.c_str(), argv.data(), envp.data());
  if (!spec.exec_failed.empty() && write(2, spec.exec_failed.data(), spec.exec_failed.size()) < 0) {
  }
  _exit(127);
}

void signal_all(const std::vector<pid_t>& pids, int sig) {
  for (pid_t p : pids)
    if (p > 0) kill(p, sig);
}

std::string describe_exit(int wait_status) {
  if (WIFEXITED(wait_status)) return "exit " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status))
    return "killed by signal " + std::to_string(WTERMSIG(wait_status)) + " (" + strsignal(WTERMSIG(wait_status)) + ")";
  return "status " + std::to_string(wait_status);
}

int exit_code(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 1;
}

}  // namespace sgs
