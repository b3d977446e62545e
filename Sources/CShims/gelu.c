// Exact GELU, forward and backward, on AVX-512F (see CShims.h: ecenet_gelu_*).
//
// Why C: in Swift (Activation.swift) GELU is compute-bound, not memory-bound:
// Swin-B's 25600×512 map took 2.63 ms forward, 7.96 ms with backward, while
// its bytes stream in 1.7 / 4.2 ms at the best bandwidth this machine shows.
// The Swift loop evaluates erf as a rational function (a 512-bit vdivps per
// 16 values) and, for the backward, an exp besides.
//
// Here neither erf nor exp is evaluated: Φ(x) (forward) and Φ(x) + x·φ(x)
// (backward) are each one piecewise polynomial in |x| over 32 intervals of
// width ¼, whose coefficients vpermt2ps picks from registers
// (gelu_tables.h, written by scripts/reference/gelu_tables.py). That is 17
// vector operations per 16 values forward and 19 backward, against 21 and 40
// for this file's previous kernels (rational erf with vrcp14ps, and exp), and
// it leaves the op memory-bound. Both are within 4.1e-8 absolute of Double,
// closer than the Swift loops' fastErf (4.2e-7).
//
// Everything that needs AVX-512 carries its own target attribute, so CShims
// still builds for baseline x86-64; callers check `ecenet_cpu_has_avx512f()`.
#include "CShims.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#include "gelu_tables.h"

#define SET1 _mm512_set1_ps

// One coefficient of all 32 intervals: two registers, picked by vpermt2ps.
typedef struct { __m512 lo, hi; } table32;

INLINE table32 load_table32(const float *t) { return (table32){_mm512_load_ps(t), _mm512_load_ps(t + 16)}; }

// g(a) for a = |x| from a gelu_tables.h table: i = round(4a) (bits 0–4 of the
// float a·4 + 1.5·2²³ hold it, and vpermt2ps reads only those), t = 4a − i,
// then Horner in t with interval i's coefficients. `degree` is a constant at
// each call, so the loop unrolls.
INLINE __m512 piecewise16(__m512 a, const table32 *c, int degree) {
  const __m512 magic = SET1(12582912.0f);                            // 1.5·2²³
  a = _mm512_min_ps(SET1(7.87f), a);                                 // this order keeps a NaN
  const __m512 rounded = _mm512_fmadd_ps(a, SET1(4.0f), magic);
  const __m512i i = _mm512_castps_si512(rounded);
  const __m512 t = _mm512_fmsub_ps(a, SET1(4.0f), _mm512_sub_ps(rounded, magic));  // exact
  __m512 p = _mm512_permutex2var_ps(c[degree].lo, i, c[degree].hi);
  for (int d = degree - 1; d >= 0; d--) p = _mm512_fmadd_ps(p, t, _mm512_permutex2var_ps(c[d].lo, i, c[d].hi));
  return p;
}

// f(x) = x < 0 ? g(|x|) : 1 − g(|x|), for the tables' f(−a) = 1 − f(a).
INLINE __m512 unfold16(__m512 x, __m512 g) {
  return _mm512_mask_sub_ps(g, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ), SET1(1.0f), g);
}

INLINE __mmask16 tail_mask(long count) { return count >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1); }

TARGET void ecenet_gelu_forward(const float *x, float *y, long n) {
  table32 c[GELU_CDF_DEGREE + 1];
  for (int d = 0; d <= GELU_CDF_DEGREE; d++) c[d] = load_table32(gelu_cdf_table[d]);
  for (long i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 cdf = unfold16(v, piecewise16(_mm512_abs_ps(v), c, GELU_CDF_DEGREE));  // Φ(x)
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, cdf));
  }
}

TARGET void ecenet_gelu_backward(const float *x, const float *dy, float *dx, long n, int accumulate) {
  table32 c[GELU_SLOPE_DEGREE + 1];
  for (int d = 0; d <= GELU_SLOPE_DEGREE; d++) c[d] = load_table32(gelu_slope_table[d]);
  for (long i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 slope = unfold16(v, piecewise16(_mm512_abs_ps(v), c, GELU_SLOPE_DEGREE));  // Φ(x) + x·φ(x)
    __m512 d = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + i), slope);
    if (accumulate) d = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dx + i), d);
    _mm512_mask_storeu_ps(dx + i, m, d);
  }
}

#else

void ecenet_gelu_forward(const float *x, float *y, long n) {
  (void)x; (void)y; (void)n;
  __builtin_trap();  // callers check ecenet_cpu_has_avx512f() first
}

void ecenet_gelu_backward(const float *x, const float *dy, float *dx, long n, int accumulate) {
  (void)x; (void)dy; (void)dx; (void)n; (void)accumulate;
  __builtin_trap();
}

#endif
