/* LD_PRELOAD shim for fault-injection tests: counts the writes a process
 * makes to files under SGS_FAULT_DIR (write, pwrite, writev, sendfile and
 * copy_file_range, whichever the C library, libstdc++ or HDF5 call) and,
 * with SGS_FAULT_KILL_AT=N, kills the process with SIGKILL at its Nth such
 * write: before it, or, with SGS_FAULT_PARTIAL=1, after writing half of its
 * bytes (a write torn by the kill). SGS_FAULT_COUNT_FILE receives the count
 * when the process exits. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static long g_count = 0, g_kill_at = 0, g_partial = 0;
static const char* g_dir = NULL;
static size_t g_dir_len = 0;

__attribute__((constructor)) static void fault_init(void) {
  g_dir = getenv("SGS_FAULT_DIR");
  g_dir_len = g_dir ? strlen(g_dir) : 0;
  const char* k = getenv("SGS_FAULT_KILL_AT");
  g_kill_at = k ? atol(k) : 0;
  const char* p = getenv("SGS_FAULT_PARTIAL");
  g_partial = p ? atol(p) : 0;
}

__attribute__((destructor)) static void fault_done(void) {
  const char* file = getenv("SGS_FAULT_COUNT_FILE");
  if (file == NULL) return;
  FILE* f = fopen(file, "w");
  if (f == NULL) return;
  fprintf(f, "%ld\n", g_count);
  fclose(f);
}

static int watched(int fd) {
  if (g_dir_len == 0) return 0;
  char link[64], target[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return 0;
  target[n] = '\0';
  return strncmp(target, g_dir, g_dir_len) == 0;
}

/* 1 when this write is the one to kill at (the caller may tear it first). */
static int kill_here(int fd) {
  if (!watched(fd)) return 0;
  ++g_count;
  return g_kill_at > 0 && g_count >= g_kill_at;
}

static void before_write(int fd) {
  if (kill_here(fd)) raise(SIGKILL);
}

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

ssize_t write(int fd, const void* buf, size_t n) {
  static __typeof__(&write) real = NULL;
  if (!real) real = NEXT(write);
  if (kill_here(fd)) {
    if (g_partial && n > 1) real(fd, buf, n / 2);
    raise(SIGKILL);
  }
  return real(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t at) {
  static __typeof__(&pwrite) real = NULL;
  if (!real) real = NEXT(pwrite);
  if (kill_here(fd)) {
    if (g_partial && n > 1) real(fd, buf, n / 2, at);
    raise(SIGKILL);
  }
  return real(fd, buf, n, at);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t at) {
  static __typeof__(&pwrite64) real = NULL;
  if (!real) real = NEXT(pwrite64);
  before_write(fd);
  return real(fd, buf, n, at);
}

ssize_t writev(int fd, const struct iovec* iov, int count) {
  static __typeof__(&writev) real = NULL;
  if (!real) real = NEXT(writev);
  before_write(fd);
  return real(fd, iov, count);
}

ssize_t sendfile(int out, int in, off_t* offset, size_t n) {
  static __typeof__(&sendfile) real = NULL;
  if (!real) real = NEXT(sendfile);
  before_write(out);
  return real(out, in, offset, n);
}

ssize_t sendfile64(int out, int in, off64_t* offset, size_t n) {
  static __typeof__(&sendfile64) real = NULL;
  if (!real) real = NEXT(sendfile64);
  before_write(out);
  return real(out, in, offset, n);
}

ssize_t copy_file_range(int in, off64_t* in_at, int out, off64_t* out_at, size_t n, unsigned int flags) {
  static __typeof__(&copy_file_range) real = NULL;
  if (!real) real = NEXT(copy_file_range);
  before_write(out);
  return real(in, in_at, out, out_at, n, flags);
}
