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

#include "bf16_pack.h"

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
