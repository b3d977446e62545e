// bf16 GEMM with fp32 accumulation on AVX512_BF16 (see bf16_gemm.h).
//
// The blocking and driver loops are gemm_driver.h's; this file holds what is
// bf16: a k step is a pair of k (one 32-bit word of two bf16) because
// `vdpbf16ps` sums the products of one 32-bit pair per lane, so
//   packed op(B): [N/NR panels][K2 pairs][NR columns][2]   (zero padded)
//   A block:      MC rows × KC pairs, 32-bit words ([row][KC] or
//                 [MR strip][KC][MR], see gemm_driver.h)
// and the packings convert fp32→bf16 with `vcvtne2ps2bf16` (round to nearest
// even; like all AVX512_BF16 instructions it treats denormal inputs as zero,
// and `vdpbf16ps` flushes denormal results). The B micro-panel is KC·128
// bytes = 32 KiB.
//
// Everything that needs AVX-512 carries its own target attribute, so CShims
// still builds for baseline x86-64 and callers must check
// `ecenet_cpu_has_avx512_bf16()` first.
#include "bf16_gemm.h"

#include <stdint.h>

#define NR 32
#define MR 14
// KC and MC may be set with -D for tuning runs (KC 128…384 measured within
// noise of each other on Zen 5; 256 keeps the B micro-panel in L1).
#ifndef KC
#define KC 256   // k pairs per K block: B micro-panel 256 × 128 B = 32 KiB (L1 48 KiB)
#endif
#ifndef MC
#define MC 168   // rows per A block (12 strips): 168 × 256 × 4 B = 168 KiB (L2 1 MiB)
#endif
#define GEMM_TARGET_FEATURES "avx512f,avx512bw,avx512vl,avx512bf16"
#define GEMM_KSTEP 2
#define GEMM_A_T uint32_t
#define GEMM_B_T uint16_t
#define GEMM_B_STEP (NR * 2)
#define GEMM_C_IN_L2 0      // the loop swap was measured for the fp32 kernel only
#define GEMM_PREFETCH_C 0
#include "gemm_driver.h"

long ecenet_bf16_gemm_nr(void) { return NR; }
long ecenet_bf16_gemm_mr(void) { return MR; }
size_t ecenet_bf16_gemm_packed_b_bytes(long k, long n) { return gemm_packed_b_bytes(k, n); }
size_t ecenet_bf16_gemm_a_scratch_bytes(void) { return gemm_a_scratch_bytes(); }

TARGET void ecenet_bf16_gemm_pack_b(int transB, long k, long n, const float *b, long ldb,
                                    long n0, long n1, void *packed) {
  gemm_pack_b(transB, k, n, b, ldb, n0, n1, (uint16_t *)packed);
}

TARGET void ecenet_bf16_gemm_compute(int transA, long m, long n, long k, float alpha,
                                     const float *a, long lda, const void *packed_b,
                                     float beta, float *c, long ldc, const float *bias,
                                     long m0, long m1, long n0, long n1, void *scratch) {
  gemm_compute(transA, m, n, k, alpha, a, lda, (const uint16_t *)packed_b, beta, c, ldc, bias, m0, m1, n0, n1,
               (uint32_t *)scratch, 0);
}

size_t ecenet_bf16_gemm_taps_scratch_bytes(long span) { return gemm_taps_scratch_bytes(span); }

TARGET void ecenet_bf16_gemm_taps_compute(long m, long n, long k, long taps, const long *offsets, float alpha,
                                         const float *a, long lda, const void *packed_b, float beta,
                                         float *c, long ldc, long m0, long m1, long n0, long n1, void *scratch) {
  gemm_taps_compute(m, n, k, taps, offsets, alpha, a, lda, (const uint16_t *)packed_b, beta, c, ldc, m0, m1, n0, n1,
                    (uint32_t *)scratch);
}

size_t ecenet_bf16_gemm_ktaps_scratch_bytes(long span) { return gemm_ktaps_scratch_bytes(span); }

TARGET void ecenet_bf16_gemm_ktaps_compute(long m, long n, long k, long taps, const long *offsets, float alpha,
                                           const float *a, long lda, const void *packed_b, float beta,
                                           float *c, long ldc, long ctap, long m0, long m1, long n0, long n1,
                                           void *scratch) {
  gemm_ktaps_compute(m, n, k, taps, offsets, alpha, a, lda, (const uint16_t *)packed_b, beta, c, ldc, ctap,
                     m0, m1, n0, n1, (uint32_t *)scratch);
}

#if defined(__x86_64__)
#include <cpuid.h>

int ecenet_cpu_has_avx512_bf16(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  if (!(c & (1u << 27))) return 0;  // OSXSAVE: xgetbv is usable
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  // XCR0: SSE (1), AVX (2), opmask (5), ZMM_Hi256 (6), Hi16_ZMM (7) all saved by the OS.
  if ((lo & 0xE6u) != 0xE6u) return 0;
  if (__get_cpuid_max(0, 0) < 7) return 0;
  __cpuid_count(7, 0, a, b, c, d);
  const unsigned need = (1u << 16) | (1u << 30) | (1u << 31);  // AVX512F, BW, VL
  if ((b & need) != need) return 0;
  __cpuid_count(7, 1, a, b, c, d);
  return (a >> 5) & 1;  // AVX512_BF16
}

int ecenet_cpu_has_amx_bf16(void) {
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, 0) < 7) return 0;
  __cpuid_count(7, 0, a, b, c, d);
  const unsigned need = (1u << 22) | (1u << 24);  // AMX-BF16, AMX-TILE
  return (d & need) == need;
}

static inline __mmask32 mask32(long count) {
  return count >= 32 ? (__mmask32)0xFFFFFFFFu : count <= 0 ? 0 : (__mmask32)((1u << count) - 1);
}

// 32 floats at p (the first `count` of them; the rest read as 0) → 32 bf16, RNE.
INLINE __m512i cvt32(const float *p, long count) {
  __m512 lo, hi;
  if (count >= 32) {
    lo = _mm512_loadu_ps(p);
    hi = _mm512_loadu_ps(p + 16);
  } else {
    lo = _mm512_maskz_loadu_ps(mask16(count), p);
    hi = _mm512_maskz_loadu_ps(mask16(count - 16), p + 16);
  }
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// Two rows of 32 bf16 (k and k+1 for 32 columns) → 32 pairs: words 0..31 hold
// the pairs of columns 0..15, words 32..63 (second result) those of 16..31.
INLINE void interleave_pairs(__m512i r0, __m512i r1, __m512i *outLo, __m512i *outHi) {
  const __m512i idxLo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                         39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  const __m512i idxHi = _mm512_set_epi16(63, 31, 62, 30, 61, 29, 60, 28, 59, 27, 58, 26, 57, 25, 56, 24,
                                         55, 23, 54, 22, 53, 21, 52, 20, 51, 19, 50, 18, 49, 17, 48, 16);
  *outLo = _mm512_permutex2var_epi16(r0, idxLo, r1);
  *outHi = _mm512_permutex2var_epi16(r0, idxHi, r1);
}

// ---- packing op(B) ----

// op(B) rows 2q, 2q+1 are rows of B: convert 32 columns of each, interleave.
INLINE void pack_b_step(const float *b, long ldb, long k, long n, long q, long j0, uint16_t *dst) {
  const float *row0 = b + 2 * q * ldb, *row1 = row0 + ldb;
  const int odd = 2 * q + 1 >= k;  // K odd, last pair: the second row is the zero pad
  __m512i r0 = cvt32(row0 + j0, n - j0);
  __m512i r1 = odd ? _mm512_setzero_si512() : cvt32(row1 + j0, n - j0);
  __m512i lo, hi;
  interleave_pairs(r0, r1, &lo, &hi);
  _mm512_storeu_si512(dst, lo);
  _mm512_storeu_si512(dst + 32, hi);
}

// op(B) column j is row j of B, already pairs: convert 16 pairs of each of a
// panel's 32 rows, then transpose the 32 × 16 words through a small buffer
// (≈1% of a GEMM's time, measured).
INLINE void pack_b_panel_t(const float *b, long ldb, long k, long n, long j0, uint16_t *panel) {
  uint32_t tmp[NR * 16] __attribute__((aligned(64)));
  const long k2 = (k + 1) / 2, w = n - j0 < NR ? n - j0 : NR;
  uint32_t *dst = (uint32_t *)panel;
  for (long qb = 0; qb < k2; qb += 16) {
    const long nq = k2 - qb < 16 ? k2 - qb : 16, kk = k - 2 * qb;
    for (long jj = 0; jj < NR; jj++) {
      __m512i v = jj < w ? cvt32(b + (j0 + jj) * ldb + 2 * qb, kk) : _mm512_setzero_si512();
      _mm512_store_si512(tmp + jj * 16, v);
    }
    for (long qq = 0; qq < nq; qq++) {
      for (long jj = 0; jj < NR; jj++) dst[(qb + qq) * NR + jj] = tmp[jj * 16 + qq];
    }
  }
}

// ---- packing op(A) blocks ----

// op(A) rows i0..i0+mc, pairs q0..q0+kcp → blk[row][KC]; rows up to the next
// multiple of MR are zero.
INLINE void pack_a_n(const float *a, long lda, long k, long i0, long mc, long q0, long kcp,
                     uint32_t *blk) {
  const long kk = k - 2 * q0 < 2 * kcp ? k - 2 * q0 : 2 * kcp;  // floats in this block
  for (long r = 0; r < mc; r++) {
    const float *src = a + (i0 + r) * lda + 2 * q0;
    uint16_t *dst = (uint16_t *)(blk + r * KC);
    for (long t = 0; t < 2 * kcp; t += 32) {
      __m512i v = cvt32(src + t, kk - t);
      _mm512_mask_storeu_epi16(dst + t, mask32(2 * kcp - t), v);  // odd K: last word is the 0 pad
    }
  }
  const long mpad = (mc + MR - 1) / MR * MR;
  for (long r = mc; r < mpad; r++) memset(blk + r * KC, 0, (size_t)kcp * sizeof(uint32_t));
}

// A is K×M (transA): the pairs of op(A)'s row i are column i of A's rows
// k, k+1. Rows i0+r for one k pair come from two contiguous loads, so this
// packing writes blk[strip][pair][MR]: each strip's A stream is sequential.
INLINE void pack_a_t(const float *a, long lda, long k, long i0, long mc, long q0, long kcp, long ss, long e,
                     uint32_t *blk) {
  // One cvtne2ps gives row k0's 16 values in words 0..15, row k1's in 16..31;
  // this puts each row's (k0, k1) pair in one 32-bit word.
  const __m512i pairIdx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                           23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const long strips = (mc + MR - 1) / MR;
  for (long qq = 0; qq < kcp; qq++) {
    const long k0 = 2 * (q0 + qq) + e;
    const float *row0 = a + k0 * lda + i0, *row1 = row0 + lda;
    const int odd = k0 + 1 >= k;  // K odd, last pair: the second value is the zero pad
    const int past = k0 >= k;     // a K-shifted block's last steps may lie wholly past A
    for (long st = 0; st < strips; st++) {
      const __mmask16 mk = past ? 0 : mask16(mc - st * MR < MR ? mc - st * MR : MR);
      const __m512 x0 = _mm512_maskz_loadu_ps(mk, row0 + st * MR);
      const __m512 x1 = odd ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mk, row1 + st * MR);
      const __m512i v = _mm512_permutexvar_epi16(pairIdx, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
      _mm512_mask_storeu_epi32(blk + st * MR * ss + qq * MR, mask16(MR), v);
    }
  }
}

// ---- microkernel step ----

// One pair of k for the 14 × 32 tile: `vdpbf16ps` adds both products of the
// broadcast A pair with each column's B pair.
INLINE void kernel_step(__m512 acc[MR][2], const uint32_t *aq, const long RS, const uint16_t *bq) {
  const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bq);
  const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bq + 32);
#pragma clang loop unroll(full)
  for (int r = 0; r < MR; r++) {
    const __m512bh av = (__m512bh)_mm512_set1_epi32((int)aq[r * RS]);
    acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
    acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
  }
}

#else  // not x86-64: no kernel; callers see ecenet_cpu_has_avx512_bf16() == 0.

int ecenet_cpu_has_avx512_bf16(void) { return 0; }
int ecenet_cpu_has_amx_bf16(void) { return 0; }
#endif
