// Softmax over contiguous rows on AVX-512F (see CShims.h: ecenet_softmax_rows).
//
// Why C: the Swift loops (Activation.swift) spend most of their time on the
// exponential, and Swift neither contracts a·b + c into an FMA nor has
// vscalefps or masked loads. Here each row takes three passes over data that
// stays in L1 (a row of attention scores is 49 to 144 floats):
//   1. the maximum, 16 lanes at a time, the tail as one masked vector;
//   2. e = exp(x − max), stored, and summed in 16 lanes;
//   3. e·(1/Σ), stored.
// exp is Activation.swift's fastExp (Cephes expf: n = round(x·log2e), r = x −
// n·ln2 in two parts, a degree-5 polynomial) with FMAs, and 2ⁿ applied by
// vscalefps instead of building the exponent bits. Arguments below −87.33654
// give 0, as fastExp's do; the maximum's own lane gives exactly 1.
//
// Everything that needs AVX-512 carries its own target attribute, so CShims
// still builds for baseline x86-64; callers check `ecenet_cpu_has_avx512f()`.
#include "CShims.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#include "exp16.h"

INLINE __mmask16 sm_tail_mask(long count) { return (__mmask16)((1u << count) - 1); }

TARGET static void sm_row(const float *x, float *y, long n) {
  long full = n / 16 * 16;
  __mmask16 tail = sm_tail_mask(n - full);
  // 1. max. max_ps(v, m) returns m when v is NaN, so NaNs are skipped as the
  // Swift rowMax skips them.
  __m512 m = _mm512_set1_ps(-__builtin_inff());
  for (long i = 0; i < full; i += 16) m = _mm512_max_ps(_mm512_loadu_ps(x + i), m);
  if (tail) m = _mm512_mask_max_ps(m, tail, _mm512_maskz_loadu_ps(tail, x + full), m);
  __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(m));
  // 2. exponentials and their sum (y may be x: each vector is read before it is written).
  __m512 s = _mm512_setzero_ps();
  for (long i = 0; i < full; i += 16) {
    __m512 e = exp16_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(x + i), mx));
    _mm512_storeu_ps(y + i, e);
    s = _mm512_add_ps(s, e);
  }
  if (tail) {
    __m512 e = exp16_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + full), mx));
    _mm512_mask_storeu_ps(y + full, tail, e);
    s = _mm512_mask_add_ps(s, tail, s, e);
  }
  // 3. normalise.
  __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(s));
  for (long i = 0; i < full; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), inv));
  if (tail) _mm512_mask_storeu_ps(y + full, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, y + full), inv));
}

void ecenet_softmax_rows(const float *x, float *y, long rows, long n, long ldx, long ldy) {
  for (long r = 0; r < rows; r++) sm_row(x + r * ldx, y + r * ldy, n);
}

#else

void ecenet_softmax_rows(const float *x, float *y, long rows, long n, long ldx, long ldy) {
  (void)x; (void)y; (void)rows; (void)n; (void)ldx; (void)ldy;
  __builtin_trap();  // callers check ecenet_cpu_has_avx512f() first
}

#endif
