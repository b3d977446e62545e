// Exact GELU, forward and backward, on AVX-512F (see CShims.h: ecenet_gelu_*).
//
// Why C: GELU is compute-bound here, not memory-bound: Swin-B's 25600×512 map
// took 2.63 ms forward, 7.96 ms with backward in Swift (Activation.swift),
// while its bytes stream in 1.7 / 4.2 ms at the best bandwidth this machine
// shows. The Swift loop vectorises, but divides for erf's rational function
// (a 512-bit vdivps per 16 values), contracts no FMAs, and builds 2ⁿ from
// exponent bits. Here:
//   erf(x)  Eigen's rational approximation as fastErf (≤ 4.2e-7 absolute on
//           [−4, 4], ±1 beyond), its 1/q by vrcp14ps and one Newton step;
//   e^x     exp16_nonpositive (exp16.h), for φ(x) = e^(−x²/2)/√(2π).
// Values agree with the Swift loops to float rounding.
//
// Everything that needs AVX-512 carries its own target attribute, so CShims
// still builds for baseline x86-64; callers check `ecenet_cpu_has_avx512f()`.
#include "CShims.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#include "exp16.h"

#define SET1 _mm512_set1_ps

INLINE __m512 erf16(__m512 a) {
  __m512 x = _mm512_min_ps(_mm512_max_ps(a, SET1(-4.0f)), SET1(4.0f));
  __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = SET1(-2.72614225801306e-10f);
  p = _mm512_fmadd_ps(p, x2, SET1(2.77068142495902e-08f));
  p = _mm512_fmadd_ps(p, x2, SET1(-2.10102402082508e-06f));
  p = _mm512_fmadd_ps(p, x2, SET1(-5.69250639462346e-05f));
  p = _mm512_fmadd_ps(p, x2, SET1(-7.34990630326855e-04f));
  p = _mm512_fmadd_ps(p, x2, SET1(-2.95459980854025e-03f));
  p = _mm512_fmadd_ps(p, x2, SET1(-1.60960333262415e-02f));
  __m512 q = SET1(-1.45660718464996e-05f);
  q = _mm512_fmadd_ps(q, x2, SET1(-2.13374055278905e-04f));
  q = _mm512_fmadd_ps(q, x2, SET1(-1.68282697438203e-03f));
  q = _mm512_fmadd_ps(q, x2, SET1(-7.37332916720468e-03f));
  q = _mm512_fmadd_ps(q, x2, SET1(-1.42647390514189e-02f));
  // 1/q: 14 bits from vrcp14ps, ~28 after r·(2 − q·r). q ≤ −0.0142 never nears 0.
  __m512 r = _mm512_rcp14_ps(q);
  r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, SET1(2.0f)));
  return _mm512_mul_ps(_mm512_mul_ps(x, p), r);
}

// Φ(x) = ½(1 + erf(x/√2)).
INLINE __m512 cdf16(__m512 x) {
  return _mm512_fmadd_ps(SET1(0.5f), erf16(_mm512_mul_ps(x, SET1(0.70710678118654752f))), SET1(0.5f));
}

INLINE __mmask16 tail_mask(long count) { return count >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1); }

TARGET void ecenet_gelu_forward(const float *x, float *y, long n) {
  for (long i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, cdf16(v)));
  }
}

TARGET void ecenet_gelu_backward(const float *x, const float *dy, float *dx, long n, int accumulate) {
  const __m512 invSqrt2Pi = SET1(0.39894228040143268f);
  for (long i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    // dy/dx = Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π).
    const __m512 e = exp16_nonpositive(_mm512_mul_ps(SET1(-0.5f), _mm512_mul_ps(v, v)));
    const __m512 slope = _mm512_fmadd_ps(_mm512_mul_ps(v, invSqrt2Pi), e, cdf16(v));
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
