// fp32 GEMM on AVX-512F (see f32_gemm.h).
//
// The blocking and driver loops are gemm_driver.h's (shared with
// bf16_gemm.c); this file holds what is fp32: a k step is one k, so
//   packed op(B): [N/NR panels][K][NR columns]   (columns ≥ N zero)
//   A block:      MC rows × KC k of floats ([row][KC] or [MR strip][KC][MR])
// the packings are plain copies (with prefetch), and the microkernel is FMA.
// The driver's two outer loops swap when the call's C block fits in L2 (long
// K, small M·N; C_IN_L2). Each tile prefetches its C lines before its K loop
// (≈ 5% on short-K shapes such as M 25600, N 256, K 128), and the A packing
// prefetches A a few rows ahead (with the swapped loops, ≈ 15% on the long-K
// weight gradient M 512, N 128, K 25600).
//
// Everything that needs AVX-512 carries its own target attribute, so CShims
// still builds for baseline x86-64 and callers must check
// `ecenet_cpu_has_avx512f()` (misc_shim.c) first.
#include "f32_gemm.h"

#include <stdint.h>

#define NR 32
#define MR 14
// KC and MC may be set with -D for tuning runs.
#ifndef KC
#define KC 256   // k per K block: B micro-panel 256 × 128 B = 32 KiB (L1 48 KiB)
#endif
#ifndef MC
#define MC 168   // rows per A block (12 strips): 168 × 256 × 4 B = 168 KiB (L2 1 MiB)
#endif
#ifndef APF
#define APF 4    // rows ahead that the A packing prefetches (A arrives in short runs)
#endif
#ifndef C_IN_L2
#define C_IN_L2 (128L * 1024)  // floats of C (512 KiB) that still leave L2 room for A and B blocks
#endif
#define GEMM_TARGET_FEATURES "avx512f"
#define GEMM_KSTEP 1
#define GEMM_A_T float
#define GEMM_B_T float
#define GEMM_B_STEP NR
#define GEMM_C_IN_L2 C_IN_L2
#ifdef NO_CPF
#define GEMM_PREFETCH_C 0
#else
#define GEMM_PREFETCH_C 1
#endif
#include "gemm_driver.h"

long ecenet_f32_gemm_nr(void) { return NR; }
long ecenet_f32_gemm_mr(void) { return MR; }
long ecenet_f32_gemm_mc(void) { return MC; }

int ecenet_f32_gemm_optimized(void) {
#ifdef __OPTIMIZE__
  return 1;
#else
  return 0;
#endif
}

size_t ecenet_f32_gemm_packed_b_bytes(long k, long n) { return gemm_packed_b_bytes(k, n); }
size_t ecenet_f32_gemm_a_scratch_bytes(void) { return gemm_a_scratch_bytes(); }

TARGET void ecenet_f32_gemm_pack_b(int transB, long k, long n, const float *b, long ldb,
                                   long n0, long n1, void *packed) {
  gemm_pack_b(transB, k, n, b, ldb, n0, n1, (float *)packed);
}

TARGET void ecenet_f32_gemm_compute(int transA, long m, long n, long k, float alpha,
                                    const float *a, long lda, const void *packed_b,
                                    float beta, float *c, long ldc, const float *bias,
                                    long m0, long m1, long n0, long n1, void *scratch) {
  gemm_compute(transA, m, n, k, alpha, a, lda, (const float *)packed_b, beta, c, ldc, bias, m0, m1, n0, n1,
               (float *)scratch, 0);
}

TARGET void ecenet_f32_gemm_compute_streaming(int transA, long m, long n, long k, float alpha,
                                              const float *a, long lda, const void *packed_b,
                                              float beta, float *c, long ldc, const float *bias,
                                              long m0, long m1, long n0, long n1, void *scratch) {
  gemm_compute(transA, m, n, k, alpha, a, lda, (const float *)packed_b, beta, c, ldc, bias, m0, m1, n0, n1,
               (float *)scratch, 1);
}

size_t ecenet_f32_gemm_taps_scratch_bytes(long span) { return gemm_taps_scratch_bytes(span); }

TARGET void ecenet_f32_gemm_taps_compute(long m, long n, long k, long taps, const long *offsets, float alpha,
                                         const float *a, long lda, const void *packed_b, float beta,
                                         float *c, long ldc, long m0, long m1, long n0, long n1, void *scratch) {
  gemm_taps_compute(m, n, k, taps, offsets, alpha, a, lda, (const float *)packed_b, beta, c, ldc, m0, m1, n0, n1,
                    (float *)scratch);
}

size_t ecenet_f32_gemm_ktaps_scratch_bytes(long span) { return gemm_ktaps_scratch_bytes(span); }

TARGET void ecenet_f32_gemm_ktaps_compute(long m, long n, long k, long taps, const long *offsets, float alpha,
                                          const float *a, long lda, const void *packed_b, float beta,
                                          float *c, long ldc, long ctap, long m0, long m1, long n0, long n1,
                                          void *scratch) {
  gemm_ktaps_compute(m, n, k, taps, offsets, alpha, a, lda, (const float *)packed_b, beta, c, ldc, ctap,
                     m0, m1, n0, n1, (float *)scratch);
}

#if defined(__x86_64__)

#include "transpose16.h"

// ---- packing op(B) ----

// op(B) row q is a row of B: 32 columns of it per panel.
INLINE void pack_b_step(const float *b, long ldb, long k, long n, long q, long j0, float *dst) {
  (void)k;
  const float *row = b + q * ldb;
  if (n - j0 >= NR) {
    _mm512_storeu_ps(dst, _mm512_loadu_ps(row + j0));
    _mm512_storeu_ps(dst + 16, _mm512_loadu_ps(row + j0 + 16));
  } else {
    _mm512_storeu_ps(dst, _mm512_maskz_loadu_ps(mask16(n - j0), row + j0));
    _mm512_storeu_ps(dst + 16, _mm512_maskz_loadu_ps(mask16(n - j0 - 16), row + j0 + 16));
  }
}

// op(B) column j is row j of B: 16 k of 16 rows at a time, transposed in registers.
INLINE void pack_b_panel_t(const float *b, long ldb, long k, long n, long j0, float *dst) {
  for (long q0 = 0; q0 < k; q0 += 16) {
    const long kk = k - q0 < 16 ? k - q0 : 16;
    const __mmask16 mk = mask16(kk);
    for (int half = 0; half < 2; half++) {
      __m512 r[16];
      for (int i = 0; i < 16; i++) {
        const long j = j0 + half * 16 + i;
        r[i] = j < n ? _mm512_maskz_loadu_ps(mk, b + j * ldb + q0) : _mm512_setzero_ps();
      }
      transpose16(r);
      for (long c = 0; c < kk; c++) _mm512_storeu_ps(dst + (q0 + c) * NR + half * 16, r[c]);
    }
  }
}

// ---- packing op(A) blocks ----

// op(A) rows i0..i0+mc, k p0..p0+kc → blk[row][KC]; rows up to the next
// multiple of MR are zero.
INLINE void pack_a_n(const float *a, long lda, long k, long i0, long mc, long p0, long kc, float *blk) {
  (void)k;
  for (long r = 0; r < mc; r++) {
    const float *src = a + (i0 + r) * lda + p0;
#if APF > 0
    if (r + APF < mc)
      for (long x = 0; x < kc; x += 16) _mm_prefetch((const char *)(src + APF * lda + x), _MM_HINT_T0);
#endif
    float *dst = blk + r * KC;
    long t = 0;
    for (; t + 16 <= kc; t += 16) _mm512_storeu_ps(dst + t, _mm512_loadu_ps(src + t));
    if (t < kc) _mm512_mask_storeu_ps(dst + t, mask16(kc - t), _mm512_maskz_loadu_ps(mask16(kc - t), src + t));
  }
  const long mpad = (mc + MR - 1) / MR * MR;
  for (long r = mc; r < mpad; r++) memset(blk + r * KC, 0, (size_t)kc * sizeof(float));
}

// A is K×M (transA): op(A)'s rows i0+r at one k are contiguous in A's row k,
// so this packing writes blk[strip][k][MR] (ss k per strip): each strip's A
// stream is sequential. Every caller's rows lie below k (e is always 0 here).
INLINE void pack_a_t(const float *a, long lda, long k, long i0, long mc, long p0, long kc, long ss, long e,
                     float *blk) {
  (void)k; (void)e;
  const long strips = (mc + MR - 1) / MR;
  for (long qq = 0; qq < kc; qq++) {
    const float *row = a + (p0 + qq) * lda + i0;
#if APF > 0
    // A comes from memory in short runs (mc floats every lda): fetch a few rows ahead.
    if (qq + APF < kc)
      for (long x = 0; x < mc; x += 16) _mm_prefetch((const char *)(row + APF * lda + x), _MM_HINT_T0);
#endif
    for (long st = 0; st < strips; st++) {
      const __mmask16 mk = mask16(mc - st * MR < MR ? mc - st * MR : MR);
      _mm512_mask_storeu_ps(blk + st * MR * ss + qq * MR, mask16(MR), _mm512_maskz_loadu_ps(mk, row + st * MR));
    }
  }
}

// ---- microkernel step ----

// One k for the 14 × 32 tile: FMA of the broadcast A element with B's 32 columns.
INLINE void kernel_step(__m512 acc[MR][2], const float *aq, const long RS, const float *bq) {
  const __m512 b0 = _mm512_loadu_ps(bq);
  const __m512 b1 = _mm512_loadu_ps(bq + 16);
#pragma clang loop unroll(full)
  for (int r = 0; r < MR; r++) {
    const __m512 av = _mm512_set1_ps(aq[r * RS]);
    acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
    acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
  }
}
#endif
