// Small fp32 GEMM on AVX-512F without packing (see small_gemm.h).
//
// C is cut into column blocks of at most 4 zmm (64 columns; N = 144 → three
// blocks of 48, N = 49 → one of 4 zmm, the last masked) and, within a block,
// into row tiles of MR rows, MR the most that fits the register file with NV
// vectors per row (NV·MR accumulators + NV of B ≤ 32 zmm: MR_MAX below), the
// rows split evenly (M 49, 4 zmm: 9 tiles of 5 or 6 rows). Each tile keeps its
// accumulators in registers over the whole K loop: per k, NV vectors of op(B)'s
// row k (the tail one masked) and one broadcast A element per row, which reads
// A in place whether transposed (row i at k: A[k·lda + i], one pointer with
// constant offsets) or not (A[i·lda + k]). op(B) is read in place when not
// transposed; transposed (B is N×K) it is turned into [K][N rounded up to 16]
// in a 32 KiB stack buffer first, 16×16 blocks transposed in registers;
// with A not transposed (q·kᵀ), a tail of N mod 16 ≤ 3 columns (N = 49) is left
// out of the tiles and done as dot products along k instead (a 1-lane masked
// zmm would cost as many FMAs as a full one: 1.27× on 49×49×32).
// The tile code is one always-inline body instantiated for every (NV, MR,
// transA), so the row count and the A strides are constants in each.
//
// Everything that needs AVX-512 carries its own target attribute, so CShims
// still builds for baseline x86-64 and callers must check
// `ecenet_cpu_has_avx512f()` (misc_shim.c) first.
#include "small_gemm.h"

#include <string.h>

#define SG_MAX_B 8192L   // floats of op(B) (N rounded up to 16): 32 KiB, one L1d
#define SG_MAX_NV 4      // zmm per row of a tile

long ecenet_small_sgemm_max_b_floats(void) { return SG_MAX_B; }

int ecenet_small_sgemm_supported(long m, long n, long k) {
  if (m < 0 || n < 0 || k < 0) return 0;
  return k * ((n + 15) / 16 * 16) <= SG_MAX_B;
}

int ecenet_small_sgemm_optimized(void) {
#ifdef __OPTIMIZE__
  return 1;
#else
  return 0;
#endif
}

// C = beta·C over M×N (K == 0 or alpha == 0); beta == 0 writes zeros without reading.
static void sg_scale(long m, long n, float beta, float *c, long ldc) {
  for (long i = 0; i < m; i++) {
    float *cr = c + i * ldc;
    if (beta == 0) memset(cr, 0, (size_t)n * sizeof(float));
    else for (long j = 0; j < n; j++) cr[j] *= beta;
  }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline)) TARGET

static inline __mmask16 sg_mask16(long count) {
  return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? 0 : (__mmask16)((1u << count) - 1);
}

// Rows per tile for NV zmm per row: NV·MR accumulators + NV B vectors ≤ 32
// (the A broadcasts are memory operands of the FMAs).
// May be set with -D for tuning runs (at most 16).
#ifndef MR_NV1
#define MR_NV1 16
#endif
#ifndef MR_NV2
#define MR_NV2 14
#endif
#ifndef MR_NV3
#define MR_NV3 9
#endif
#ifndef MR_NV4
#define MR_NV4 6
#endif

// The tile C[MR × NV·16 (last zmm masked by mlast)] (=|+=) alpha·Σ_k op(A)·op(B).
// Row r of op(A) at k is a[r·RS + k·KS]; op(B) row k at b + k·ldb.
INLINE void sg_tile(const int MR, const int NV, const long RS, const long KS, long k, const float *a,
                    const float *b, long ldb, float *c, long ldc, __mmask16 mlast, float alpha, float beta) {
  __m512 acc[16][SG_MAX_NV];
#pragma clang loop unroll(full)
  for (int r = 0; r < MR; r++) {
#pragma clang loop unroll(full)
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
  }
  for (long q = 0; q < k; q++) {
    const float *bq = b + q * ldb, *aq = a + q * KS;
    __m512 bv[SG_MAX_NV];
#pragma clang loop unroll(full)
    for (int v = 0; v < NV; v++)
      bv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(mlast, bq + 16 * v) : _mm512_loadu_ps(bq + 16 * v);
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
      const __m512 av = _mm512_set1_ps(aq[r * RS]);
#pragma clang loop unroll(full)
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma clang loop unroll(full)
  for (int r = 0; r < MR; r++) {
    float *cr = c + r * ldc;
#pragma clang loop unroll(full)
    for (int v = 0; v < NV; v++) {
      const __mmask16 mk = v == NV - 1 ? mlast : (__mmask16)0xFFFF;
      __m512 x = _mm512_mul_ps(va, acc[r][v]);
      if (beta != 0) x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk, cr + 16 * v), x);
      _mm512_mask_storeu_ps(cr + 16 * v, mk, x);
    }
  }
}

// One noinline function per (NV, transA), a case per row count up to MR_NV<NV>.
#define SG_CASE(R, NV, MRMAX, RS, KS)                                                   \
  case R:                                                                              \
    if (R <= MRMAX) sg_tile(R <= MRMAX ? R : 1, NV, RS, KS, k, a, b, ldb, c, ldc, mlast, alpha, beta); \
    break;
#define SG_CASES(NV, MRMAX, RS, KS)                                                     \
  SG_CASE(1, NV, MRMAX, RS, KS) SG_CASE(2, NV, MRMAX, RS, KS) SG_CASE(3, NV, MRMAX, RS, KS)     \
  SG_CASE(4, NV, MRMAX, RS, KS) SG_CASE(5, NV, MRMAX, RS, KS) SG_CASE(6, NV, MRMAX, RS, KS)     \
  SG_CASE(7, NV, MRMAX, RS, KS) SG_CASE(8, NV, MRMAX, RS, KS) SG_CASE(9, NV, MRMAX, RS, KS)     \
  SG_CASE(10, NV, MRMAX, RS, KS) SG_CASE(11, NV, MRMAX, RS, KS) SG_CASE(12, NV, MRMAX, RS, KS)  \
  SG_CASE(13, NV, MRMAX, RS, KS) SG_CASE(14, NV, MRMAX, RS, KS) SG_CASE(15, NV, MRMAX, RS, KS)  \
  SG_CASE(16, NV, MRMAX, RS, KS)
#define SG_DISPATCH(NAME, NV, MRMAX, TA)                                                          \
  static TARGET __attribute__((noinline)) void NAME(int mr, long k, const float *a, long lda,         \
                                                     const float *b, long ldb, float *c, long ldc,    \
                                                     __mmask16 mlast, float alpha, float beta) {      \
    (void)lda;                                                                                     \
    if (TA) {                                                                                      \
      switch (mr) { SG_CASES(NV, MRMAX, 1, lda) }                                                  \
    } else {                                                                                       \
      switch (mr) { SG_CASES(NV, MRMAX, lda, 1) }                                                  \
    }                                                                                              \
  }
SG_DISPATCH(sg_nv1_n, 1, MR_NV1, 0)
SG_DISPATCH(sg_nv2_n, 2, MR_NV2, 0)
SG_DISPATCH(sg_nv3_n, 3, MR_NV3, 0)
SG_DISPATCH(sg_nv4_n, 4, MR_NV4, 0)
SG_DISPATCH(sg_nv1_t, 1, MR_NV1, 1)
SG_DISPATCH(sg_nv2_t, 2, MR_NV2, 1)
SG_DISPATCH(sg_nv3_t, 3, MR_NV3, 1)
SG_DISPATCH(sg_nv4_t, 4, MR_NV4, 1)

typedef void (*sg_tile_fn)(int, long, const float *, long, const float *, long, float *, long, __mmask16,
                           float, float);

#include "transpose16.h"

// op(B) = Bᵀ (B is N×K, row stride ldb) → dst[K][ldd], ldd = N rounded up to 16;
// columns ≥ N are zero.
static TARGET void sg_transpose_b(long n, long k, const float *b, long ldb, float *dst, long ldd) {
  for (long j0 = 0; j0 < n; j0 += 16) {
    for (long q0 = 0; q0 < k; q0 += 16) {
      const long kk = k - q0 < 16 ? k - q0 : 16;
      const __mmask16 mk = sg_mask16(kk);
      __m512 r[16];
      for (int i = 0; i < 16; i++)
        r[i] = j0 + i < n ? _mm512_maskz_loadu_ps(mk, b + (j0 + i) * ldb + q0) : _mm512_setzero_ps();
      transpose16(r);
      for (long x = 0; x < kk; x++) _mm512_store_ps(dst + (q0 + x) * ldd + j0, r[x]);
    }
  }
}

// The tiles over C, op(B) at bb (row stride ldbb) read in place.
static TARGET void sg_run(int transA, long m, long n, long k, float alpha, const float *a, long lda,
                          const float *bb, long ldbb, float beta, float *c, long ldc) {
  static const sg_tile_fn fn[2][SG_MAX_NV] = {{sg_nv1_n, sg_nv2_n, sg_nv3_n, sg_nv4_n},
                                              {sg_nv1_t, sg_nv2_t, sg_nv3_t, sg_nv4_t}};
  static const int mrMax[SG_MAX_NV] = {MR_NV1, MR_NV2, MR_NV3, MR_NV4};
  const long nvAll = (n + 15) / 16;
  const long blocks = (nvAll + SG_MAX_NV - 1) / SG_MAX_NV;
  const long nvBlock = (nvAll + blocks - 1) / blocks;  // equal blocks: 9 zmm → 3 of 3, not 4 + 4 + 1
  for (long jv = 0; jv < nvAll; jv += nvBlock) {
    const long nv = nvAll - jv < nvBlock ? nvAll - jv : nvBlock;
    const long j0 = jv * 16;
    const __mmask16 mlast = sg_mask16(n - j0 - (nv - 1) * 16);
    const sg_tile_fn tile = fn[transA ? 1 : 0][nv - 1];
    const long tiles = (m + mrMax[nv - 1] - 1) / mrMax[nv - 1];
    for (long t = 0; t < tiles; t++) {  // rows split evenly: tiles of ⌊M/tiles⌋ or ⌈M/tiles⌉
      const long i0 = t * m / tiles, i1 = (t + 1) * m / tiles;
      tile((int)(i1 - i0), k, a + (transA ? i0 : i0 * lda), lda, bb + j0, ldbb, c + i0 * ldc + j0, ldc,
           mlast, alpha, beta);
    }
  }
}

// C[:, j0..n) by dot products, when op(A) rows and op(B) columns both run along k
// (A not transposed, B transposed: q·kᵀ). For a narrow tail (N = 49: one
// column) this costs K/16 FMAs and a reduction per element, where a masked zmm
// of the tile costs K FMAs per row for 1 useful lane of 16.
static TARGET void sg_tail_dots(long m, long n, long j0, long k, float alpha, const float *a, long lda,
                                const float *b, long ldb, float beta, float *c, long ldc) {
  const long kv = k / 16 * 16;
  const __mmask16 mk = sg_mask16(k - kv);
  for (long j = j0; j < n; j++) {
    const float *bj = b + j * ldb;
    for (long i = 0; i < m; i++) {
      const float *ai = a + i * lda;
      __m512 acc = _mm512_setzero_ps();
      long q = 0;
      for (; q < kv; q += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(ai + q), _mm512_loadu_ps(bj + q), acc);
      if (mk) acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, ai + q), _mm512_maskz_loadu_ps(mk, bj + q), acc);
      const float x = alpha * _mm512_reduce_add_ps(acc);
      float *cij = c + i * ldc + j;
      *cij = beta == 0 ? x : x + beta * *cij;
    }
  }
}

// Tail columns (N mod 16) that `sg_tail_dots` takes instead of a masked zmm.
#ifndef SG_DOT_TAIL
#define SG_DOT_TAIL 3
#endif

// transB: op(B) into a stack buffer first (its own frame, so other calls skip the 32 KiB).
static TARGET __attribute__((noinline)) void sg_run_tb(int transA, long m, long n, long k, float alpha,
                                                       const float *a, long lda, const float *b, long ldb,
                                                       float beta, float *c, long ldc) {
  float bt[SG_MAX_B] __attribute__((aligned(64)));
  const long tail = n % 16;
  const long nMain = !transA && n > 16 && tail <= SG_DOT_TAIL ? n - tail : n;
  const long ldd = (nMain + 15) / 16 * 16;
  sg_transpose_b(nMain, k, b, ldb, bt, ldd);
  sg_run(transA, m, nMain, k, alpha, a, lda, bt, ldd, beta, c, ldc);
  if (nMain < n) sg_tail_dots(m, n, nMain, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

TARGET void ecenet_small_sgemm(int transA, int transB, long m, long n, long k, float alpha,
                               const float *a, long lda, const float *b, long ldb,
                               float beta, float *c, long ldc) {
  if (m <= 0 || n <= 0 || !ecenet_small_sgemm_supported(m, n, k)) return;
  if (k == 0 || alpha == 0) { sg_scale(m, n, beta, c, ldc); return; }
  if (transB) sg_run_tb(transA, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else sg_run(transA, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

#else  // not x86-64: the same sums in plain loops (callers see the CPU check return 0).

void ecenet_small_sgemm(int transA, int transB, long m, long n, long k, float alpha,
                        const float *a, long lda, const float *b, long ldb,
                        float beta, float *c, long ldc) {
  if (m <= 0 || n <= 0 || !ecenet_small_sgemm_supported(m, n, k)) return;
  if (k == 0 || alpha == 0) { sg_scale(m, n, beta, c, ldc); return; }
  for (long i = 0; i < m; i++) {
    for (long j = 0; j < n; j++) {
      float s = 0;
      for (long q = 0; q < k; q++)
        s += (transA ? a[q * lda + i] : a[i * lda + q]) * (transB ? b[j * ldb + q] : b[q * ldb + j]);
      c[i * ldc + j] = beta == 0 ? alpha * s : alpha * s + beta * c[i * ldc + j];
    }
  }
}
#endif
