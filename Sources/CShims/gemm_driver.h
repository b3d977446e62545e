// The blocking and driver loops of our packed-panel GEMMs (bf16_gemm.c,
// f32_gemm.c), written once around each file's AVX-512 microkernel. Private to
// CShims (not under include/: Swift never sees it).
//
// Both kernels are the GotoBLAS/BLIS shape, counted in "k steps" (bf16: a pair
// of k, one 32-bit word of two bf16, because `vdpbf16ps` sums the products of
// one pair per lane; fp32: one k); KS = ceil(K / GEMM_KSTEP) steps:
//   packed op(B): [N/NR panels][KS steps][NR columns] of GEMM_B_STEP elements
//                 per step (columns ≥ N zero)
//   A block:      MC rows × KC steps, either [row][KC] (op(A) rows were
//                 contiguous: A not transposed) or [MR strip][KC][MR] (op(A)
//                 columns were contiguous: A transposed), so both packings are
//                 straight vector copies; the microkernel takes the two strides
//                 as compile-time constants.
//   microkernel:  MR = 14 rows × NR = 32 columns = 28 zmm accumulators, plus
//                 2 zmm of B and one broadcast A step: 31 of the 32 zmm.
// Loops: row blocks of MC (A block in L2) → K blocks of KC steps (the B
// micro-panel, KC·128 bytes, stays in L1 while every MR strip of the A block
// passes over it) → 32-column panels → MR strips; the two outer loops swap
// when the call's C block fits in L2 (GEMM_C_IN_L2). The first K block applies
// beta (and adds the optional bias row, so a linear layer's bias costs no pass
// over C), later ones add.
//
// This is a template. The including file defines first:
//   GEMM_TARGET_FEATURES  the target("…") string of its AVX-512 subset; every
//                         function that runs AVX-512 carries it, so CShims still
//                         builds for baseline x86-64 (callers check the CPU)
//   NR, MR, KC, MC        tile and block sizes (KC in k steps)
//   GEMM_KSTEP            k per step (2 or 1)
//   GEMM_A_T              element of the packed A block (one row's k step)
//   GEMM_B_T, GEMM_B_STEP element of packed B; elements per k step of a panel
//   GEMM_C_IN_L2          floats of C up to which `gemm_compute` runs K blocks
//                         outside row blocks (0: never)
//   GEMM_PREFETCH_C       1: each tile prefetches its C lines before its K loop
//   GEMM_CUSTOM_KERNEL    1: the file brings its own `kernel_rows` and
//                         `kernel_cols` (and no `kernel_step`); 0 or unset: the
//                         zmm microkernel below over its `kernel_step`
//   GEMM_KTAPS_ROWS       1: `gemm_ktaps_compute` packs its A block [row][ss]
//                         (amx_gemm.c: tiles load rows) and calls the file's
//                         `kernel_rows_strided`; 0 or unset: [strip][ss][MR]
//                         through `kernel_cols`
//   GEMM_KTAPS_SS_ALIGN   `gemm_ktaps_strip_steps` rounds up to a multiple of
//                         it (default 1; AMX: 16, a tile's pairs)
// and, after including it (x86-64 only), the hooks declared below. The file
// then writes its exported entry points over `gemm_packed_b_bytes`,
// `gemm_a_scratch_bytes`, `gemm_pack_b` and `gemm_compute`; on non-x86 builds
// the last two are empty.
#ifndef ECENET_GEMM_DRIVER_H
#define ECENET_GEMM_DRIVER_H

#include <stddef.h>
#include <stdint.h>

static inline size_t gemm_packed_b_bytes(long k, long n) {
  if (k <= 0 || n <= 0) return 0;
  return (size_t)((n + NR - 1) / NR) * (size_t)((k + GEMM_KSTEP - 1) / GEMM_KSTEP) * GEMM_B_STEP *
         sizeof(GEMM_B_T);
}

static inline size_t gemm_a_scratch_bytes(void) { return (size_t)MC * KC * sizeof(GEMM_A_T); }

// Rows per row block of `gemm_taps_compute`: its A block holds these plus the
// taps' span, so it is packed once for every tap (24 strips: with the 3×3 fuse
// conv's span of 2 padded lines + 2 at 128² the block is 598 rows, 598 KiB of
// fp32 in a 1 MiB L2).
#define GEMM_TAPS_MC (2 * MC)
static inline size_t gemm_taps_scratch_bytes(long span) {
  return (size_t)(GEMM_TAPS_MC + (span > 0 ? span : 0) + 2 * MR) * KC * sizeof(GEMM_A_T);
}

// Steps per strip (per row, GEMM_KTAPS_ROWS) of `gemm_ktaps_compute`'s A
// block: a K block plus the taps' span, so each tap reads the block at its
// offset.
#ifndef GEMM_KTAPS_SS_ALIGN
#define GEMM_KTAPS_SS_ALIGN 1
#endif
#ifndef GEMM_KTAPS_ROWS
#define GEMM_KTAPS_ROWS 0
#endif
static inline long gemm_ktaps_strip_steps(long span) {
  const long steps = KC + (span > 0 ? span : 0) / GEMM_KSTEP;
  return (steps + GEMM_KTAPS_SS_ALIGN - 1) / GEMM_KTAPS_SS_ALIGN * GEMM_KTAPS_SS_ALIGN;
}
// Its A scratch: one block of MC rows per phase (bf16: even and odd offsets).
static inline size_t gemm_ktaps_scratch_bytes(long span) {
  return (size_t)GEMM_KSTEP * ((MC + MR - 1) / MR * MR) * gemm_ktaps_strip_steps(span) * sizeof(GEMM_A_T);
}

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define TARGET __attribute__((target(GEMM_TARGET_FEATURES)))
#define INLINE static inline __attribute__((always_inline)) TARGET

static inline __mmask16 mask16(long count) {
  return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? 0 : (__mmask16)((1u << count) - 1);
}

// ---- hooks: what differs between the kernels (defined by the including file) ----

// op(B) not transposed: k step q of the panel at column j0 → dst (GEMM_B_STEP
// elements); columns ≥ n (and k ≥ K in a step) are zero.
INLINE void pack_b_step(const float *b, long ldb, long k, long n, long q, long j0, GEMM_B_T *dst);
// op(B) transposed (B is N×K): the whole panel at column j0 → dst (KS steps).
INLINE void pack_b_panel_t(const float *b, long ldb, long k, long n, long j0, GEMM_B_T *dst);
// op(A) rows i0..i0+mc, steps q0..q0+kcp → blk[row][KC], rows up to the next
// multiple of MR zero (A not transposed) …
INLINE void pack_a_n(const float *a, long lda, long k, long i0, long mc, long q0, long kcp,
                     GEMM_A_T *blk);
// … or blk[strip][step][MR] (A transposed, K×M) with `ss` steps per strip
// (KC: the same strip bases as [row][KC], since MR·KC elements = MR rows of KC;
// GEMM_KTAPS_ROWS: blk[row][ss] instead). Step q holds A rows q·GEMM_KSTEP + e
// onward (e < GEMM_KSTEP: the K-shifted taps' odd offsets in bf16); rows ≥ k,
// and with GEMM_KTAPS_ROWS steps ≥ kcp up to ss, read as zero.
INLINE void pack_a_t(const float *a, long lda, long k, long i0, long mc, long q0, long kcp, long ss, long e,
                     GEMM_A_T *blk);
#if !GEMM_CUSTOM_KERNEL
// One k step of the microkernel: acc[r][h] += A(r) · B(columns 16h..16h+15),
// A(r) at aq[r·RS], B at bq (one step of one panel).
INLINE void kernel_step(__m512 acc[MR][2], const GEMM_A_T *aq, long RS, const GEMM_B_T *bq);
#endif

// ---- packing op(B) ----

INLINE void gemm_pack_b(int transB, long k, long n, const float *b, long ldb, long n0, long n1,
                        GEMM_B_T *pb) {
  if (k <= 0 || n <= 0 || n1 <= n0) return;
  const long ks = (k + GEMM_KSTEP - 1) / GEMM_KSTEP;
  const long p0 = n0 / NR, p1 = (n1 + NR - 1) / NR;
  if (!transB) {
    // Eight panels per pass read 1 KiB runs of each row (one panel alone reads
    // 128 B per row at a stride of ldb, which the prefetchers serve poorly).
    for (long g = p0; g < p1; g += 8) {
      const long g1 = g + 8 < p1 ? g + 8 : p1;
      for (long q = 0; q < ks; q++) {
        for (long jp = g; jp < g1; jp++) pack_b_step(b, ldb, k, n, q, jp * NR, pb + (jp * ks + q) * GEMM_B_STEP);
      }
    }
  } else {
    for (long jp = p0; jp < p1; jp++) pack_b_panel_t(b, ldb, k, n, jp * NR, pb + jp * ks * GEMM_B_STEP);
  }
}

// ---- microkernel ----

// Whether a tile's store goes past the caches: `stream` (a C that no later K
// block reads back) and beta == 0, on a full 64-byte-aligned tile (the
// caller fences; see gemm_compute).
static inline int streams_tile(int stream, float beta, int nr, const float *c, long ldc) {
  return stream && beta == 0 && nr == NR && ((uintptr_t)c & 63) == 0 && (ldc & 15) == 0;
}

// The tile's store: C[mr × nr] = alpha · acc + beta · C (+ bias[:] when bias
// is not NULL), acc[r][h] holding columns 16h..16h+15 of row r. beta == 0
// writes C without reading it; `nt` (streams_tile) stores non-temporally.
INLINE void store_tile(__m512 acc[MR][2], float *c, long ldc, int mr, int nr, float alpha, float beta,
                       const float *bias, int nt) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  if (nr == NR) {
    // alpha·acc + bias in one rounding (+ 0 without a bias: alpha·acc's own).
    const __m512 b0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
      if (r < mr) {
        float *cr = c + r * ldc;
        __m512 x0 = _mm512_fmadd_ps(va, acc[r][0], b0), x1 = _mm512_fmadd_ps(va, acc[r][1], b1);
        if (beta != 0) {
          x0 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(cr), x0);
          x1 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(cr + 16), x1);
        }
        if (nt) {
          _mm512_stream_ps(cr, x0);
          _mm512_stream_ps(cr + 16, x1);
        } else {
          _mm512_storeu_ps(cr, x0);
          _mm512_storeu_ps(cr + 16, x1);
        }
      }
    }
  } else {
    const __mmask16 m0 = mask16(nr), m1 = mask16(nr - 16);
    const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
      if (r < mr) {
        float *cr = c + r * ldc;
        __m512 x0 = _mm512_fmadd_ps(va, acc[r][0], b0), x1 = _mm512_fmadd_ps(va, acc[r][1], b1);
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

#if GEMM_CUSTOM_KERNEL
// The including file defines these two after the include (amx_gemm.c: AMX
// tiles rather than zmm accumulators); their contract is the one below.
static TARGET void kernel_rows(long kp, const GEMM_A_T *a, const GEMM_B_T *b, float *c, long ldc, int mr, int nr,
                               float alpha, float beta, const float *bias, int stream);
static TARGET void kernel_cols(long kp, const GEMM_A_T *a, const GEMM_B_T *b, float *c, long ldc, int mr, int nr,
                               float alpha, float beta, const float *bias, int stream);
#endif
#if GEMM_KTAPS_ROWS
// `kernel_rows` over an A block whose rows are `rs` steps apart (not KC).
static TARGET void kernel_rows_strided(long kp, const GEMM_A_T *a, long rs, const GEMM_B_T *b, float *c, long ldc,
                                       int mr, int nr, float alpha, float beta);
#endif
#if !GEMM_CUSTOM_KERNEL
// C[mr × nr] = alpha · Σ_q A[r, q] · B[q, :] + beta · C (+ bias) over kp
// steps, stored by `store_tile`. Step q of row r sits at a[r·RS + q·QS]; B is
// one panel at step 0.
INLINE void kernel(long kp, const GEMM_A_T *a, const long RS, const long QS, const GEMM_B_T *b,
                   float *c, long ldc, int mr, int nr, float alpha, float beta, const float *bias, int stream) {
  const int nt = streams_tile(stream, beta, nr, c, ldc);
  __m512 acc[MR][2];
#pragma clang loop unroll(full)
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
#if GEMM_PREFETCH_C
  // The tile of C is written once, after the K loop: fetching its lines now
  // hides their miss (C is usually far larger than the caches). Streamed
  // stores need no line fetched.
  for (int r = 0; r < (nt ? 0 : mr); r++) {
    _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(c + r * ldc + NR - 1), _MM_HINT_T0);
  }
#endif
  for (long q = 0; q < kp; q++) kernel_step(acc, a + q * QS, RS, b + q * GEMM_B_STEP);
  store_tile(acc, c, ldc, mr, nr, alpha, beta, bias, nt);
}

// The two A layouts, each with its strides fixed so the A broadcasts become
// constant displacements from one pointer.
static TARGET __attribute__((noinline)) void kernel_rows(long kp, const GEMM_A_T *a, const GEMM_B_T *b,
                                                          float *c, long ldc, int mr, int nr,
                                                          float alpha, float beta, const float *bias, int stream) {
  kernel(kp, a, KC, 1, b, c, ldc, mr, nr, alpha, beta, bias, stream);
}
static TARGET __attribute__((noinline)) void kernel_cols(long kp, const GEMM_A_T *a, const GEMM_B_T *b,
                                                          float *c, long ldc, int mr, int nr,
                                                          float alpha, float beta, const float *bias, int stream) {
  kernel(kp, a, 1, MR, b, c, ldc, mr, nr, alpha, beta, bias, stream);
}
#endif

// C = beta·C (+ bias) on the block: the whole product is zero (k == 0 or alpha == 0).
static void scale_block(float beta, const float *bias, float *c, long ldc, long m0, long m1, long n0, long n1) {
  for (long i = m0; i < m1; i++) {
    float *cr = c + i * ldc;
    if (beta == 0) memset(cr + n0, 0, (size_t)(n1 - n0) * sizeof(float));
    else for (long j = n0; j < n1; j++) cr[j] *= beta;
    if (bias) for (long j = n0; j < n1; j++) cr[j] += bias[j];
  }
}

// ---- driver ----

// Clips the block [m0, m1) × [n0, n1) to C's M × N, n0 down to its panel's
// first column; 0 when nothing is left.
static inline int clip_block(long m, long n, long *m0, long *m1, long *n0, long *n1) {
  if (*m1 > m) *m1 = m;
  if (*m0 < 0) *m0 = 0;
  if (*n1 > n) *n1 = n;
  if (*n0 < 0) *n0 = 0;
  *n0 = *n0 / NR * NR;
  return *m1 > *m0 && *n1 > *n0;
}

// The contract of `ecenet_*_gemm_compute` (bf16_gemm.h, f32_gemm.h). `stream`:
// with beta == 0 and a single K block (so C is written once and never read
// back), store C's full tiles non-temporally, then fence them.
INLINE void gemm_compute(int transA, long m, long n, long k, float alpha, const float *a, long lda,
                         const GEMM_B_T *pb, float beta, float *c, long ldc, const float *bias,
                         long m0, long m1, long n0, long n1, GEMM_A_T *blk, int stream) {
  if (!clip_block(m, n, &m0, &m1, &n0, &n1)) return;
  if (k <= 0 || alpha == 0) { scale_block(beta, bias, c, ldc, m0, m1, n0, n1); return; }
  const long ks = (k + GEMM_KSTEP - 1) / GEMM_KSTEP;
  stream = stream && beta == 0 && ks <= KC;
  // Row blocks outside K blocks keep each C block in cache across its K
  // blocks; when this call's whole C block fits in L2 anyway (small M·N, long
  // K: weight gradients), K blocks outside row blocks instead keep the K
  // block of packed B in L2 for all the row blocks rather than rereading all
  // of B from memory once per row block. Each element's K blocks are summed
  // in the same order either way.
  const int kOuter = GEMM_C_IN_L2 > 0 && ks > KC && (m1 - m0) * (n1 - n0) <= GEMM_C_IN_L2;
  for (long outer = kOuter ? 0 : m0; outer < (kOuter ? ks : m1); outer += kOuter ? KC : MC) {
    for (long inner = kOuter ? m0 : 0; inner < (kOuter ? m1 : ks); inner += kOuter ? MC : KC) {
      const long i0 = kOuter ? inner : outer, q0 = kOuter ? outer : inner;
      const long mc = m1 - i0 < MC ? m1 - i0 : MC;
      const long kcp = ks - q0 < KC ? ks - q0 : KC;
      const float be = q0 == 0 ? beta : 1.0f;
      const float *bi = q0 == 0 ? bias : NULL;
      if (transA) pack_a_t(a, lda, k, i0, mc, q0, kcp, KC, 0, blk);
      else pack_a_n(a, lda, k, i0, mc, q0, kcp, blk);
      for (long j0 = n0; j0 < n1; j0 += NR) {
        const GEMM_B_T *bp = pb + (j0 / NR * ks + q0) * GEMM_B_STEP;
        const int nr = n1 - j0 < NR ? (int)(n1 - j0) : NR;
        for (long s = 0; s < mc; s += MR) {
          const int mr = mc - s < MR ? (int)(mc - s) : MR;
          float *cp = c + (i0 + s) * ldc + j0;
          const float *bj = bi ? bi + j0 : NULL;
          if (transA) kernel_cols(kcp, blk + s * KC, bp, cp, ldc, mr, nr, alpha, be, bj, stream);
          else kernel_rows(kcp, blk + s * KC, bp, cp, ldc, mr, nr, alpha, be, bj, stream);
        }
      }
    }
  }
  // Streamed lines are weakly ordered: make them visible before the caller
  // reports this block done.
  if (stream) _mm_sfence();
}

// C = alpha · Σ_t A[row + off[t], :] · op(B_t) + beta · C on rows [m0, m1) ×
// columns [n0, n1): the shifted-taps convolution (Tensor's Conv.swift), where
// row r of A is padded pixel r and tap t reads the pixel off[t] rows further.
// A is not transposed and holds m + max(off) rows; `pb` holds the taps'
// packed op(B_t) one after another, gemm_packed_b_bytes(k, n) bytes each.
// Instead of one GEMM per tap (A packed taps times, C read and written taps
// times per K block), each row block packs its rows plus the span once per K
// block and every tap reads that block at its offset ([row][KC] layout: a row
// shift is a pointer shift); per 32-column panel the taps run one after
// another over the strips, so the panel's C block stays in L2 between taps.
// The sums run tap by tap, K block by K block, in the same order for any
// split of rows or columns. off[t] ≥ 0. blk: gemm_taps_scratch_bytes(span).
INLINE void gemm_taps_compute(long m, long n, long k, long taps, const long *off, float alpha,
                              const float *a, long lda, const GEMM_B_T *pb, float beta, float *c, long ldc,
                              long m0, long m1, long n0, long n1, GEMM_A_T *blk) {
  if (!clip_block(m, n, &m0, &m1, &n0, &n1)) return;
  if (k <= 0 || alpha == 0 || taps <= 0) { scale_block(beta, NULL, c, ldc, m0, m1, n0, n1); return; }
  const long ks = (k + GEMM_KSTEP - 1) / GEMM_KSTEP;
  const long btap = (long)(gemm_packed_b_bytes(k, n) / sizeof(GEMM_B_T));
  long span = 0;
  for (long t = 0; t < taps; t++) span = off[t] > span ? off[t] : span;
  for (long i0 = m0; i0 < m1; i0 += GEMM_TAPS_MC) {
    const long mc = m1 - i0 < GEMM_TAPS_MC ? m1 - i0 : GEMM_TAPS_MC;
    for (long q0 = 0; q0 < ks; q0 += KC) {
      const long kcp = ks - q0 < KC ? ks - q0 : KC;
      // Rows a tap reads past mc + span (the last strip's rows ≥ its mr) only
      // feed accumulator rows that are never stored: left as they are.
      pack_a_n(a, lda, k, i0, mc + span, q0, kcp, blk);
      for (long j0 = n0; j0 < n1; j0 += NR) {
        const int nr = n1 - j0 < NR ? (int)(n1 - j0) : NR;
        for (long t = 0; t < taps; t++) {
          const GEMM_B_T *bp = pb + t * btap + (j0 / NR * ks + q0) * GEMM_B_STEP;
          const float be = q0 == 0 && t == 0 ? beta : 1.0f;
          for (long s = 0; s < mc; s += MR) {
            const int mr = mc - s < MR ? (int)(mc - s) : MR;
            kernel_rows(kcp, blk + (s + off[t]) * KC, bp, c + (i0 + s) * ldc + j0, ldc, mr, nr, alpha, be, NULL, 0);
          }
        }
      }
    }
  }
}

// C_t = alpha · Σ_{q<k} A[q + off[t], i] · B[q, j] + beta · C_t for every tap t,
// C_t at c + t·ctap, on rows [m0, m1) × columns [n0, n1): the shifted-taps
// convolution's weight gradient (Conv.swift), dW_tᵀ = (x padded, shifted by
// tap t)ᵀ · dy, where the taps shift op(A) = Aᵀ along K. A is K×M (read
// transposed) with k + max(off) rows; `pb` is B (k × n) packed by gemm_pack_b.
// Per-tap GEMMs would pack the shifted A once per tap; here each row block
// packs its K block plus the span once ([strip][ss][MR], ss steps per strip),
// and tap t reads it off[t] steps further (bf16: a step is a pair of rows, so
// odd offsets read a second block packed one row later). B's panel stays in
// L1 while every tap's strips pass over it. Each element's sum runs K block by
// K block in the same order for any split. off[t] ≥ 0. blk:
// gemm_ktaps_scratch_bytes(max(off)).
INLINE void gemm_ktaps_compute(long m, long n, long k, long taps, const long *off, float alpha,
                               const float *a, long lda, const GEMM_B_T *pb, float beta, float *c, long ldc,
                               long ctap, long m0, long m1, long n0, long n1, GEMM_A_T *blk) {
  if (!clip_block(m, n, &m0, &m1, &n0, &n1)) return;
  if (k <= 0 || alpha == 0 || taps <= 0) {
    for (long t = 0; t < taps; t++) scale_block(beta, NULL, c + t * ctap, ldc, m0, m1, n0, n1);
    return;
  }
  const long ks = (k + GEMM_KSTEP - 1) / GEMM_KSTEP;
  long span = 0;
  int phase[GEMM_KSTEP] = {0};
  for (long t = 0; t < taps; t++) {
    span = off[t] > span ? off[t] : span;
    phase[off[t] % GEMM_KSTEP] = 1;
  }
  const long ss = gemm_ktaps_strip_steps(span);
  const long phaseStride = (MC + MR - 1) / MR * MR * ss;
  for (long i0 = m0; i0 < m1; i0 += MC) {
    const long mc = m1 - i0 < MC ? m1 - i0 : MC;
    for (long q0 = 0; q0 < ks; q0 += KC) {
      const long kcp = ks - q0 < KC ? ks - q0 : KC;
      const float be = q0 == 0 ? beta : 1.0f;
      for (long e = 0; e < GEMM_KSTEP; e++) {
        if (phase[e]) pack_a_t(a, lda, k + span, i0, mc, q0, kcp + span / GEMM_KSTEP, ss, e, blk + e * phaseStride);
      }
      for (long j0 = n0; j0 < n1; j0 += NR) {
        const GEMM_B_T *bp = pb + (j0 / NR * ks + q0) * GEMM_B_STEP;
        const int nr = n1 - j0 < NR ? (int)(n1 - j0) : NR;
        for (long t = 0; t < taps; t++) {
          // A tap's shift is off/GEMM_KSTEP steps: MR elements apart in a strip, 1 in a row.
          const GEMM_A_T *at = blk + off[t] % GEMM_KSTEP * phaseStride + off[t] / GEMM_KSTEP * (GEMM_KTAPS_ROWS ? 1 : MR);
          for (long s = 0; s < mc; s += MR) {
            const int mr = mc - s < MR ? (int)(mc - s) : MR;
            float *ct = c + t * ctap + (i0 + s) * ldc + j0;
#if GEMM_KTAPS_ROWS
            kernel_rows_strided(kcp, at + s * ss, ss, bp, ct, ldc, mr, nr, alpha, be);
#else
            kernel_cols(kcp, at + s * ss, bp, ct, ldc, mr, nr, alpha, be, NULL, 0);
#endif
          }
        }
      }
    }
  }
}

#else  // not x86-64: no kernels (callers see the CPU checks return 0).

#define TARGET
static inline void gemm_pack_b(int transB, long k, long n, const float *b, long ldb, long n0, long n1,
                               GEMM_B_T *pb) {
  (void)transB; (void)k; (void)n; (void)b; (void)ldb; (void)n0; (void)n1; (void)pb;
}
static inline void gemm_compute(int transA, long m, long n, long k, float alpha, const float *a, long lda,
                                const GEMM_B_T *pb, float beta, float *c, long ldc, const float *bias,
                                long m0, long m1, long n0, long n1, GEMM_A_T *blk, int stream) {
  (void)transA; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda; (void)pb;
  (void)beta; (void)c; (void)ldc; (void)bias; (void)m0; (void)m1; (void)n0; (void)n1; (void)blk; (void)stream;
}
static inline void gemm_taps_compute(long m, long n, long k, long taps, const long *off, float alpha,
                                     const float *a, long lda, const GEMM_B_T *pb, float beta, float *c,
                                     long ldc, long m0, long m1, long n0, long n1, GEMM_A_T *blk) {
  (void)m; (void)n; (void)k; (void)taps; (void)off; (void)alpha; (void)a; (void)lda; (void)pb;
  (void)beta; (void)c; (void)ldc; (void)m0; (void)m1; (void)n0; (void)n1; (void)blk;
}
static inline void gemm_ktaps_compute(long m, long n, long k, long taps, const long *off, float alpha,
                                      const float *a, long lda, const GEMM_B_T *pb, float beta, float *c,
                                      long ldc, long ctap, long m0, long m1, long n0, long n1, GEMM_A_T *blk) {
  (void)m; (void)n; (void)k; (void)taps; (void)off; (void)alpha; (void)a; (void)lda; (void)pb;
  (void)beta; (void)c; (void)ldc; (void)ctap; (void)m0; (void)m1; (void)n0; (void)n1; (void)blk;
}
#endif
#endif
