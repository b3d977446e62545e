// e^x for 16 floats x ≤ 0 on AVX-512F: Activation.swift's fastExp (Cephes
// expf: n = round(x·log2e), r = x − n·ln2 in two parts, a degree-5
// polynomial) with FMAs, and 2ⁿ applied by vscalefps instead of building the
// exponent bits; below −87.33654, 0, as fastExp gives. Used by the AVX-512
// softmax rows (softmax_rows.c); kept in a header of its own for the next
// pointwise kernel that needs e^x. Private to CShims. The includer defines
// INLINE (static inline, always_inline, target("avx512f")).
#ifndef ECENET_EXP16_H
#define ECENET_EXP16_H
#include <immintrin.h>

INLINE __m512 exp16_nonpositive(__m512 x) {
  // Only the lower clamp: callers pass x ≤ 0.
  const __m512 lo = _mm512_set1_ps(-87.33654f);
  __mmask16 live = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
  __m512 xc = _mm512_max_ps(x, lo);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.442695041f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  return _mm512_maskz_scalef_ps(live, y, n);
}

#endif
