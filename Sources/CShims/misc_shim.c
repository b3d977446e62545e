// zstd and OpenBLAS shims (macro constants, OpenBLAS extensions), CPU features,
// and per-thread scratch.
#include "CShims.h"
#include <pthread.h>
#include <stdlib.h>

long long ecenet_zstd_frame_size(const void *src, size_t len) {
  unsigned long long n = ZSTD_getFrameContentSize(src, len);
  if (n == ZSTD_CONTENTSIZE_ERROR) return -2;
  if (n == ZSTD_CONTENTSIZE_UNKNOWN) return -1;
  return (long long)n;
}

char *openblas_get_corename(void);
void ecenet_blas_set_threads(int n) { openblas_set_num_threads(n); }
int ecenet_blas_get_threads(void) { return openblas_get_num_threads(); }
const char *ecenet_blas_corename(void) { return openblas_get_corename(); }

// CPU features the release build may have assumed (Package.swift, -target-cpu).
int ecenet_cpu_has_avx2(void) {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return 0;
#endif
}
int ecenet_cpu_has_avx512f(void) {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f");
#else
  return 0;
#endif
}

// The thread's buffer lives in a thread-local struct (no lock, no lookup on the
// hot path); a pthread key, set once the thread first allocates, frees it at exit.
struct thread_scratch { void *p; size_t cap; };
static __thread struct thread_scratch tls_scratch;
static pthread_key_t scratch_key;
static pthread_once_t scratch_key_once = PTHREAD_ONCE_INIT;
static void scratch_free(void *s) {
  struct thread_scratch *ts = s;
  free(ts->p);
  ts->p = NULL;
  ts->cap = 0;
}
static void scratch_make_key(void) { pthread_key_create(&scratch_key, scratch_free); }

void *ecenet_thread_scratch(size_t bytes) {
  struct thread_scratch *ts = &tls_scratch;
  if (ts->cap >= bytes && ts->p) return ts->p;
  if (!ts->p) {  // first allocation on this thread: register the exit hook
    pthread_once(&scratch_key_once, scratch_make_key);
    pthread_setspecific(scratch_key, ts);
  }
  free(ts->p);
  ts->p = NULL;
  ts->cap = 0;
  size_t cap = bytes < 4096 ? 4096 : bytes;
  if (posix_memalign(&ts->p, 64, cap) != 0) { ts->p = NULL; return NULL; }
  ts->cap = cap;
  return ts->p;
}
