// fp32 GEMM on AVX-512F (see f32_gemm.h).
//
// The GotoBLAS/BLIS shape of bf16_gemm.c, in fp32:
//   packed op(B): [N/NR panels][K][NR columns]   (columns ≥ N zero)
//   A block:      MC rows × KC k of floats, either [row][KC] (op(A) rows
//                 were contiguous: A not transposed) or [MR strip][KC][MR]
//                 (op(A) columns were contiguous: A transposed), so both
//                 packings are straight vector copies; the microkernel takes
//                 the two strides as compile-time constants.
//   microkernel:  MR = 14 rows × NR = 32 columns = 28 zmm accumulators, plus
//                 2 zmm of B and one broadcast A element: 31 of the 32 zmm.
// Loops: row blocks of MC (A block in L2) → K blocks of KC (the B
// micro-panel, KC·128 bytes, stays in L1 while every MR strip of the A block
// passes over it) → 32-column panels → MR strips; the two outer loops swap
// when the call's C block fits in L2 (long K, small M·N). The first K block
// applies beta, later ones add. Each tile prefetches its C lines before its
// K loop (≈ 5% on short-K shapes such as M 25600, N 256, K 128), and the A
// packing prefetches A a few rows ahead (with the swapped loops, ≈ 15% on the
// long-K weight gradient M 512, N 128, K 25600).
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

long ecenet_f32_gemm_nr(void) { return NR; }
long ecenet_f32_gemm_mr(void) { return MR; }

int ecenet_f32_gemm_optimized(void) {
#ifdef __OPTIMIZE__
  return 1;
#else
  return 0;
#endif
}

size_t ecenet_f32_gemm_packed_b_bytes(long k, long n) {
  if (k <= 0 || n <= 0) return 0;
  return (size_t)((n + NR - 1) / NR) * (size_t)k * NR * sizeof(float);
}

size_t ecenet_f32_gemm_a_scratch_bytes(void) { return (size_t)MC * KC * sizeof(float); }

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define TARGET __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline)) TARGET

static inline __mmask16 mask16(long count) {
  return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? 0 : (__mmask16)((1u << count) - 1);
}

// In-register transpose of 16 rows of 16 floats: r[i][j] → r[j][i].
INLINE void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; i++) {  // per 128-bit lane: pairs of rows interleaved
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; g++) {  // u[4g + c], lane L: column 4L + c of rows 4g..4g+3
    const __m512 *tg = t + 4 * g;
    u[4 * g + 0] = _mm512_shuffle_ps(tg[0], tg[2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(tg[0], tg[2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(tg[1], tg[3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(tg[1], tg[3], 0xEE);
  }
  for (int c = 0; c < 4; c++) {
    // Row groups (0, 1) and (2, 3): lanes of columns c, 8+c (0x88) and 4+c, 12+c (0xDD).
    const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
    const __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
    const __m512 w0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const __m512 w1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    r[c] = _mm512_shuffle_f32x4(v0, w0, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
    r[4 + c] = _mm512_shuffle_f32x4(v1, w1, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
  }
}

// ---- packing op(B) ----

TARGET void ecenet_f32_gemm_pack_b(int transB, long k, long n, const float *b, long ldb,
                                   long n0, long n1, void *packed) {
  if (k <= 0 || n <= 0 || n1 <= n0) return;
  float *pb = (float *)packed;
  const long p0 = n0 / NR, p1 = (n1 + NR - 1) / NR;
  if (!transB) {
    // op(B) row k is a row of B: 32 columns of it per panel. Eight panels per
    // pass read 1 KiB runs of each row (one panel alone reads 128 B per row
    // at a stride of ldb, which the prefetchers serve poorly).
    for (long g = p0; g < p1; g += 8) {
      const long g1 = g + 8 < p1 ? g + 8 : p1;
      for (long q = 0; q < k; q++) {
        const float *row = b + q * ldb;
        for (long jp = g; jp < g1; jp++) {
          const long j0 = jp * NR;
          float *dst = pb + (jp * k + q) * NR;
          if (n - j0 >= NR) {
            _mm512_storeu_ps(dst, _mm512_loadu_ps(row + j0));
            _mm512_storeu_ps(dst + 16, _mm512_loadu_ps(row + j0 + 16));
          } else {
            _mm512_storeu_ps(dst, _mm512_maskz_loadu_ps(mask16(n - j0), row + j0));
            _mm512_storeu_ps(dst + 16, _mm512_maskz_loadu_ps(mask16(n - j0 - 16), row + j0 + 16));
          }
        }
      }
    }
  } else {
    // op(B) column j is row j of B: 16 k of 16 rows at a time, transposed in registers.
    for (long jp = p0; jp < p1; jp++) {
      const long j0 = jp * NR;
      float *dst = pb + jp * k * NR;
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
  }
}

// ---- packing op(A) blocks ----

// op(A) rows i0..i0+mc, k p0..p0+kc → blk[row][KC]; rows up to the next
// multiple of MR are zero.
INLINE void pack_a_n(const float *a, long lda, long i0, long mc, long p0, long kc, float *blk) {
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
// so this packing writes blk[strip][k][MR]: each strip's A stream is
// sequential (the same strip bases as pack_a_n, since MR·KC = MR rows of KC).
INLINE void pack_a_t(const float *a, long lda, long i0, long mc, long p0, long kc, float *blk) {
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
      _mm512_mask_storeu_ps(blk + st * MR * KC + qq * MR, mask16(MR), _mm512_maskz_loadu_ps(mk, row + st * MR));
    }
  }
}

// ---- microkernel ----

// C[mr × nr] (=|+=) alpha · Σ_q A[r, q] · B[q, :] over kc. Element (r, q) of
// A sits at a[r·RS + q·QS]; B is one panel at row 0. beta == 0 writes C
// without reading it.
INLINE void kernel(long kc, const float *a, const long RS, const long QS, const float *b,
                   float *c, long ldc, int mr, int nr, float alpha, float beta) {
  __m512 acc[MR][2];
#pragma clang loop unroll(full)
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
#ifndef NO_CPF
  // The tile of C is written once, after the K loop: fetching its lines now
  // hides their miss (C is usually far larger than the caches).
  for (int r = 0; r < mr; r++) {
    _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(c + r * ldc + NR - 1), _MM_HINT_T0);
  }
#endif
  for (long q = 0; q < kc; q++) {
    const __m512 b0 = _mm512_loadu_ps(b + q * NR);
    const __m512 b1 = _mm512_loadu_ps(b + q * NR + 16);
    const float *aq = a + q * QS;
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
      const __m512 av = _mm512_set1_ps(aq[r * RS]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  if (nr == NR) {
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
      if (r < mr) {
        float *cr = c + r * ldc;
        __m512 x0 = _mm512_mul_ps(va, acc[r][0]), x1 = _mm512_mul_ps(va, acc[r][1]);
        if (beta != 0) {
          x0 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(cr), x0);
          x1 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(cr + 16), x1);
        }
        _mm512_storeu_ps(cr, x0);
        _mm512_storeu_ps(cr + 16, x1);
      }
    }
  } else {
    const __mmask16 m0 = mask16(nr), m1 = mask16(nr - 16);
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
      if (r < mr) {
        float *cr = c + r * ldc;
        __m512 x0 = _mm512_mul_ps(va, acc[r][0]), x1 = _mm512_mul_ps(va, acc[r][1]);
        if (beta != 0) {
          x0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cr), x0);
          x1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16), x1);
        }
        _mm512_mask_storeu_ps(cr, m0, x0);
        _mm512_mask_storeu_ps(cr + 16, m1, x1);
      }
    }
  }
}

// The two A layouts, each with its strides fixed so the A broadcasts become
// constant displacements from one pointer.
static TARGET __attribute__((noinline)) void kernel_rows(long kc, const float *a, const float *b,
                                                          float *c, long ldc, int mr, int nr,
                                                          float alpha, float beta) {
  kernel(kc, a, KC, 1, b, c, ldc, mr, nr, alpha, beta);
}
static TARGET __attribute__((noinline)) void kernel_cols(long kc, const float *a, const float *b,
                                                          float *c, long ldc, int mr, int nr,
                                                          float alpha, float beta) {
  kernel(kc, a, 1, MR, b, c, ldc, mr, nr, alpha, beta);
}

static void scale_block(float beta, float *c, long ldc, long m0, long m1, long n0, long n1) {
  for (long i = m0; i < m1; i++) {
    float *cr = c + i * ldc;
    if (beta == 0) memset(cr + n0, 0, (size_t)(n1 - n0) * sizeof(float));
    else for (long j = n0; j < n1; j++) cr[j] *= beta;
  }
}

TARGET void ecenet_f32_gemm_compute(int transA, long m, long n, long k, float alpha,
                                    const float *a, long lda, const void *packed_b,
                                    float beta, float *c, long ldc, long m0, long m1,
                                    long n0, long n1, void *scratch) {
  if (m1 > m) m1 = m;
  if (m0 < 0) m0 = 0;
  if (n1 > n) n1 = n;
  if (n0 < 0) n0 = 0;
  n0 = n0 / NR * NR;
  if (m1 <= m0 || n1 <= n0) return;
  if (k <= 0 || alpha == 0) { scale_block(beta, c, ldc, m0, m1, n0, n1); return; }
  const float *pb = (const float *)packed_b;
  float *blk = (float *)scratch;
  // Row blocks outside K blocks keep each C block in cache across its K
  // blocks; when this call's whole C block fits in L2 anyway (small M·N, long
  // K: weight gradients), K blocks outside row blocks instead keep the K
  // block of packed B in L2 for all the row blocks rather than rereading all
  // of B from memory once per row block. Each element's K blocks are summed
  // in the same order either way.
  const int kOuter = k > KC && (m1 - m0) * (n1 - n0) <= C_IN_L2;
  for (long outer = kOuter ? 0 : m0; outer < (kOuter ? k : m1); outer += kOuter ? KC : MC) {
    for (long inner = kOuter ? m0 : 0; inner < (kOuter ? m1 : k); inner += kOuter ? MC : KC) {
      const long i0 = kOuter ? inner : outer, p0 = kOuter ? outer : inner;
      const long mc = m1 - i0 < MC ? m1 - i0 : MC;
      const long kc = k - p0 < KC ? k - p0 : KC;
      const float be = p0 == 0 ? beta : 1.0f;
      if (transA) pack_a_t(a, lda, i0, mc, p0, kc, blk);
      else pack_a_n(a, lda, i0, mc, p0, kc, blk);
      for (long j0 = n0; j0 < n1; j0 += NR) {
        const float *bp = pb + (j0 / NR * k + p0) * NR;
        const int nr = n1 - j0 < NR ? (int)(n1 - j0) : NR;
        for (long s = 0; s < mc; s += MR) {
          const int mr = mc - s < MR ? (int)(mc - s) : MR;
          float *cp = c + (i0 + s) * ldc + j0;
          if (transA) kernel_cols(kc, blk + s * KC, bp, cp, ldc, mr, nr, alpha, be);
          else kernel_rows(kc, blk + s * KC, bp, cp, ldc, mr, nr, alpha, be);
        }
      }
    }
  }
}

#else  // not x86-64: no kernel; callers see ecenet_cpu_has_avx512f() == 0.

void ecenet_f32_gemm_pack_b(int transB, long k, long n, const float *b, long ldb,
                            long n0, long n1, void *packed) {
  (void)transB; (void)k; (void)n; (void)b; (void)ldb; (void)n0; (void)n1; (void)packed;
}
void ecenet_f32_gemm_compute(int transA, long m, long n, long k, float alpha,
                             const float *a, long lda, const void *packed_b,
                             float beta, float *c, long ldc, long m0, long m1,
                             long n0, long n1, void *scratch) {
  (void)transA; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda; (void)packed_b;
  (void)beta; (void)c; (void)ldc; (void)m0; (void)m1; (void)n0; (void)n1; (void)scratch;
}
#endif
