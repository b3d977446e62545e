// The fp32 → bf16 packings of op(B) and of a not-transposed op(A) block,
// shared by the AVX512_BF16 kernel (bf16_gemm.c) and the AMX kernel
// (amx_gemm.c), which read the same packed B. Private to CShims (not under
// include/). x86-64 only: include it after gemm_driver.h (it uses the
// including file's NR, MR, KC, TARGET and mask16). BF16_A_KPAD (default 1):
// `pack_a_n` zero-fills each row's pairs up to a multiple of it.
#ifndef ECENET_BF16_PACK_H
#define ECENET_BF16_PACK_H

#ifndef BF16_A_KPAD
#define BF16_A_KPAD 1
#endif

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
  // Pairs up to the next multiple of BF16_A_KPAD (AMX tiles read 16) and
  // rows up to the next multiple of MR are zero.
  const long kpad = (kcp + BF16_A_KPAD - 1) / BF16_A_KPAD * BF16_A_KPAD;
  if (kpad > kcp) {
    for (long r = 0; r < mc; r++) memset(blk + r * KC + kcp, 0, (size_t)(kpad - kcp) * sizeof(uint32_t));
  }
  const long mpad = (mc + MR - 1) / MR * MR;
  for (long r = mc; r < mpad; r++) memset(blk + r * KC, 0, (size_t)kpad * sizeof(uint32_t));
}

#endif
