// zstd and OpenBLAS shims: macro constants and OpenBLAS extensions.
#include "CShims.h"

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
