// bf16 GEMM with fp32 accumulation on AMX tiles (see amx_gemm.h).
//
// gemm_driver.h's loops and bf16_pack.h's packings, with a tile microkernel:
// a 32 × 32 block of C is four 16 × 16 fp32 tiles (tmm0–3), summed over K in
// groups of 16 k pairs by `tdpbf16ps` from two A tiles (tmm4–5: rows 0–15 and
// 16–31, 16 pairs each) and two B tiles (tmm6–7: columns 0–15 and 16–31).
//   packed op(B): bf16_gemm.c's [N/32 panels][K2 pairs][32 columns][2]: a B
//                 tile is 16 pair rows of 64 bytes at a stride of 128, which
//                 is exactly AMX's "VNNI" layout for B
//   A block:      [row][KC] pairs for both transposes (a tile loads 16 rows of
//                 16 pairs at a stride of KC·4 bytes), rows zero-padded to 32
//                 and pairs to 16; the transposed packing goes through
//                 transpose16.h. The K-shifted taps GEMM (conv dW) packs
//                 [row][ss] instead, ss = its K block plus the taps' span
//                 (GEMM_KTAPS_ROWS), and its tile loads take that stride
// The last group of a K block, when K2 is not a multiple of 16, reads its B
// rows from a zero-padded copy: past the block, packed B holds the next
// panel, whose values (0 × inf) could poison the sums.
//
// The tiles are configured once per `compute` call (`ldtilecfg` zeroes them)
// and released at its end, so a thread holds no tile state between GEMMs.
// The accumulators leave the tiles through memory and gemm_driver.h's
// `store_tile` applies alpha, beta and the bias as in the other kernels.
#include "amx_gemm.h"

#include <stdint.h>

#define NR 32
#define MR 32
#define KC 256   // k pairs per K block: 16 tile groups; B micro-panel 32 KiB
#define MC 192   // rows per A block (6 tile strips): 192 KiB
#define GEMM_TARGET_FEATURES "avx512f,avx512bw,avx512vl,avx512bf16"
#define GEMM_KSTEP 2
#define GEMM_A_T uint32_t
#define GEMM_B_T uint16_t
#define GEMM_B_STEP (NR * 2)
#define GEMM_C_IN_L2 0
#define GEMM_PREFETCH_C 0
#define GEMM_CUSTOM_KERNEL 1
#define GEMM_KTAPS_ROWS 1
#define GEMM_KTAPS_SS_ALIGN 16
#define BF16_A_KPAD 16
#include "gemm_driver.h"

long ecenet_amx_gemm_mr(void) { return MR; }
size_t ecenet_amx_gemm_a_scratch_bytes(void) { return gemm_a_scratch_bytes(); }
size_t ecenet_amx_gemm_taps_scratch_bytes(long span) { return gemm_taps_scratch_bytes(span); }
size_t ecenet_amx_gemm_ktaps_scratch_bytes(long span) { return gemm_ktaps_scratch_bytes(span); }

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bf16_gemm.h"
#include "bf16_pack.h"
#include "transpose16.h"

#define AMX_TARGET __attribute__((target(GEMM_TARGET_FEATURES ",amx-tile,amx-bf16")))

int ecenet_amx_enable(void) {
  // Linux's arch_prctl codes (asm/prctl.h) and the XSAVE feature number of tile data.
  enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
  static int state = -1;  // -1 not asked yet; a race only repeats the idempotent request
  if (state >= 0) return state;
  int ok = ecenet_cpu_has_amx_bf16() && ecenet_cpu_has_avx512_bf16();
  if (ok) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    ok = (lo & (3u << 17)) == (3u << 17);  // XCR0: XTILECFG (17) and XTILEDATA (18) enabled by the OS
  }
  if (ok) ok = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
  state = ok;
  return ok;
}

// Whether this thread's current `compute` call emulates the tiles (set by the
// exported entry points for the length of one call).
static __thread int emulate_tiles;

// ---- packing op(A) transposed: [row][ss] pairs ----

// A is K×M: op(A)'s row i, pair q is column i of A's rows 2q + e, 2q + e + 1
// (e = 1: the K-shifted taps' odd offsets). For 16 rows × 16 pairs at a time,
// one vector per pair holds the 16 rows' words (two contiguous loads,
// converted and interleaved as bf16_gemm.c's pack_a_t does), and transpose16
// turns them into one vector of 16 pairs per row. Rows are `ss` pairs apart
// (KC for gemm_compute; the K-shifted taps' block plus its span otherwise);
// pairs ≥ kcp up to ss are zero, so a tile that reads past its K block (the
// last group of a shifted tap) multiplies zeros there, as the B tail does.
INLINE void pack_a_t(const float *a, long lda, long k, long i0, long mc, long q0, long kcp, long ss, long e,
                     uint32_t *blk) {
  const __m512i pairIdx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                           23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const long kpad = (kcp + 15) / 16 * 16, mpad = (mc + MR - 1) / MR * MR;
  for (long r0 = 0; r0 < mpad; r0 += 16) {
    const __mmask16 mk = mask16(mc - r0);
    for (long qb = 0; qb < kpad; qb += 16) {
      __m512 v[16];
      for (int qq = 0; qq < 16; qq++) {
        const long k0 = 2 * (q0 + qb + qq) + e;
        const int past = k0 >= k || qb + qq >= kcp;  // past A, or a pad pair of the block
        const int odd = k0 + 1 >= k;                  // K odd, last pair: the second value is the zero pad
        const float *row0 = a + k0 * lda + i0 + r0;
        const __m512 x0 = past ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mk, row0);
        const __m512 x1 = past || odd ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mk, row0 + lda);
        v[qq] = (__m512)_mm512_permutexvar_epi16(pairIdx, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
      }
      transpose16(v);
      for (int r = 0; r < 16; r++) _mm512_storeu_si512(blk + (r0 + r) * ss + qb, (__m512i)v[r]);
    }
    if (ss > kpad) {
      for (int r = 0; r < 16; r++) memset(blk + (r0 + r) * ss + kpad, 0, (size_t)(ss - kpad) * sizeof(uint32_t));
    }
  }
}

// ---- tile microkernel ----

// The tile configuration (palette 1): tmm0–7 all 16 rows × 64 bytes.
typedef struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} __attribute__((packed, aligned(64))) TileConfig;

static AMX_TARGET __attribute__((noinline)) void tiles_begin(void) {
  TileConfig cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; t++) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
}

static AMX_TARGET __attribute__((noinline)) void tiles_end(void) { _tile_release(); }

// acc (a 32 × 32 row-major float block) = Σ over `groups` groups of 16 pairs,
// then one more group from `tail` (NULL: none) with A at the next 16 pairs.
// a: rows 0..31 of the A block (rows `rs` words apart); b: one panel at pair 0.
static AMX_TARGET __attribute__((noinline)) void tiles_hw(long groups, const uint32_t *a, long rs, const uint16_t *b,
                                                         const uint16_t *tail, float *acc) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (long g = 0; g <= groups; g++) {
    const uint16_t *bg = g < groups ? b + g * 16 * GEMM_B_STEP : tail;
    if (!bg) break;
    _tile_loadd(4, a + 16 * g, rs * 4);
    _tile_loadd(5, a + 16 * rs + 16 * g, rs * 4);
    _tile_loadd(6, bg, GEMM_B_STEP * 2);
    _tile_loadd(7, bg + 32, GEMM_B_STEP * 2);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, acc, 128);
  _tile_stored(1, acc + 16, 128);
  _tile_stored(2, acc + 16 * 32, 128);
  _tile_stored(3, acc + 16 * 32 + 16, 128);
}

static inline float bf16_value(uint32_t h) {
  union { uint32_t u; float f; } v = {h << 16};
  return v.f;
}

// tiles_hw in C: `tdpbf16ps` as the SDM's pseudocode has it, for each k pair
// in order the even product, then the odd one, each added with one fp32
// rounding (the products of two bf16 are exact in fp32).
static void tiles_emulated(long groups, const uint32_t *a, long rs, const uint16_t *b, const uint16_t *tail,
                           float *acc) {
  memset(acc, 0, 32 * 32 * sizeof(float));
  for (long g = 0; g <= groups; g++) {
    const uint16_t *bg = g < groups ? b + g * 16 * GEMM_B_STEP : tail;
    if (!bg) break;
    for (int r = 0; r < 32; r++) {
      const uint32_t *ar = a + r * rs + 16 * g;
      for (int j = 0; j < 32; j++) {
        float t = acc[r * 32 + j];
        for (int p = 0; p < 16; p++) {
          t += bf16_value(ar[p] & 0xFFFF) * bf16_value(bg[p * GEMM_B_STEP + 2 * j]);
          t += bf16_value(ar[p] >> 16) * bf16_value(bg[p * GEMM_B_STEP + 2 * j + 1]);
        }
        acc[r * 32 + j] = t;
      }
    }
  }
}

// gemm_driver.h's microkernel contract over kp pairs, A rows `rs` pairs apart.
static TARGET void tile_block(long kp, const uint32_t *a, long rs, const uint16_t *b, float *c, long ldc, int mr,
                              int nr, float alpha, float beta, const float *bias, int stream) {
  __m512 acc[MR][2];  // row r's 32 columns: the tiles' stores land in it as a 32 × 32 float block
  uint16_t tailB[16 * GEMM_B_STEP] __attribute__((aligned(64)));
  const long groups = kp / 16, rem = kp % 16;
  if (rem) {
    memcpy(tailB, b + groups * 16 * GEMM_B_STEP, (size_t)rem * GEMM_B_STEP * sizeof(uint16_t));
    memset(tailB + rem * GEMM_B_STEP, 0, (size_t)(16 - rem) * GEMM_B_STEP * sizeof(uint16_t));
  }
  if (emulate_tiles) tiles_emulated(groups, a, rs, b, rem ? tailB : NULL, (float *)acc);
  else tiles_hw(groups, a, rs, b, rem ? tailB : NULL, (float *)acc);
  store_tile(acc, c, ldc, mr, nr, alpha, beta, bias, streams_tile(stream, beta, nr, c, ldc));
}

// Both of gemm_compute's A layouts are [row][KC] here.
static TARGET void kernel_rows(long kp, const uint32_t *a, const uint16_t *b, float *c, long ldc, int mr, int nr,
                               float alpha, float beta, const float *bias, int stream) {
  tile_block(kp, a, KC, b, c, ldc, mr, nr, alpha, beta, bias, stream);
}

// The K-shifted taps GEMM's [row][ss] block (GEMM_KTAPS_ROWS).
static TARGET void kernel_rows_strided(long kp, const uint32_t *a, long rs, const uint16_t *b, float *c, long ldc,
                                       int mr, int nr, float alpha, float beta) {
  tile_block(kp, a, rs, b, c, ldc, mr, nr, alpha, beta, NULL, 0);
}

static TARGET void kernel_cols(long kp, const uint32_t *a, const uint16_t *b, float *c, long ldc, int mr, int nr,
                               float alpha, float beta, const float *bias, int stream) {
  kernel_rows(kp, a, b, c, ldc, mr, nr, alpha, beta, bias, stream);
}

TARGET void ecenet_amx_gemm_compute(int transA, long m, long n, long k, float alpha, const float *a, long lda,
                                    const void *packed_b, float beta, float *c, long ldc, const float *bias,
                                    long m0, long m1, long n0, long n1, void *scratch) {
  emulate_tiles = 0;
  tiles_begin();
  gemm_compute(transA, m, n, k, alpha, a, lda, (const uint16_t *)packed_b, beta, c, ldc, bias, m0, m1, n0, n1,
               (uint32_t *)scratch, 0);
  tiles_end();
}

TARGET void ecenet_amx_gemm_compute_emulated(int transA, long m, long n, long k, float alpha, const float *a,
                                             long lda, const void *packed_b, float beta, float *c, long ldc,
                                             const float *bias, long m0, long m1, long n0, long n1, void *scratch) {
  emulate_tiles = 1;
  gemm_compute(transA, m, n, k, alpha, a, lda, (const uint16_t *)packed_b, beta, c, ldc, bias, m0, m1, n0, n1,
               (uint32_t *)scratch, 0);
  emulate_tiles = 0;
}

// The K-shifted taps GEMM (the conv's weight gradient): gemm_driver.h's
// `gemm_ktaps_compute` with its A block in rows (GEMM_KTAPS_ROWS), a tap's
// shift of off/2 pairs a pointer shift along the row, odd offsets from a
// second block packed one A row later. A tile reads up to 15 pairs past the
// tap's K block: zero pad, or the next taps' pairs of the block, multiplied
// by the zero tail of B (an inf there, unlike the AVX512_BF16 kernel, would
// make NaN: activations with inf have already made the loss non-finite).
TARGET void ecenet_amx_gemm_ktaps_compute(long m, long n, long k, long taps, const long *offsets, float alpha,
                                          const float *a, long lda, const void *packed_b, float beta, float *c,
                                          long ldc, long ctap, long m0, long m1, long n0, long n1, void *scratch) {
  emulate_tiles = 0;
  tiles_begin();
  gemm_ktaps_compute(m, n, k, taps, offsets, alpha, a, lda, (const uint16_t *)packed_b, beta, c, ldc, ctap,
                     m0, m1, n0, n1, (uint32_t *)scratch);
  tiles_end();
}

TARGET void ecenet_amx_gemm_ktaps_compute_emulated(long m, long n, long k, long taps, const long *offsets,
                                                   float alpha, const float *a, long lda, const void *packed_b,
                                                   float beta, float *c, long ldc, long ctap, long m0, long m1,
                                                   long n0, long n1, void *scratch) {
  emulate_tiles = 1;
  gemm_ktaps_compute(m, n, k, taps, offsets, alpha, a, lda, (const uint16_t *)packed_b, beta, c, ldc, ctap,
                     m0, m1, n0, n1, (uint32_t *)scratch);
  emulate_tiles = 0;
}

// The shifted-taps GEMM: gemm_driver.h's `gemm_taps_compute` over the tile
// microkernel. Its A block is [row][KC] pairs, as here, and a tap's row shift
// is a pointer shift, so a tile load reads the shifted rows at the same
// stride. A tap may read up to 31 rows past the block's packed rows (into the
// scratch's 2·MR spare rows): they feed only tile rows ≥ mr, never stored.
TARGET void ecenet_amx_gemm_taps_compute(long m, long n, long k, long taps, const long *offsets, float alpha,
                                         const float *a, long lda, const void *packed_b, float beta,
                                         float *c, long ldc, long m0, long m1, long n0, long n1, void *scratch) {
  emulate_tiles = 0;
  tiles_begin();
  gemm_taps_compute(m, n, k, taps, offsets, alpha, a, lda, (const uint16_t *)packed_b, beta, c, ldc, m0, m1, n0, n1,
                    (uint32_t *)scratch);
  tiles_end();
}

TARGET void ecenet_amx_gemm_taps_compute_emulated(long m, long n, long k, long taps, const long *offsets,
                                                  float alpha, const float *a, long lda, const void *packed_b,
                                                  float beta, float *c, long ldc, long m0, long m1, long n0,
                                                  long n1, void *scratch) {
  emulate_tiles = 1;
  gemm_taps_compute(m, n, k, taps, offsets, alpha, a, lda, (const uint16_t *)packed_b, beta, c, ldc, m0, m1, n0, n1,
                    (uint32_t *)scratch);
  emulate_tiles = 0;
}

#else  // not x86-64: no kernel; ecenet_amx_enable() == 0.

int ecenet_amx_enable(void) { return 0; }
void ecenet_amx_gemm_compute(int transA, long m, long n, long k, float alpha, const float *a, long lda,
                             const void *packed_b, float beta, float *c, long ldc, const float *bias,
                             long m0, long m1, long n0, long n1, void *scratch) {
  gemm_compute(transA, m, n, k, alpha, a, lda, (const uint16_t *)packed_b, beta, c, ldc, bias, m0, m1, n0, n1,
               (uint32_t *)scratch, 0);
}
void ecenet_amx_gemm_compute_emulated(int transA, long m, long n, long k, float alpha, const float *a, long lda,
                                      const void *packed_b, float beta, float *c, long ldc, const float *bias,
                                      long m0, long m1, long n0, long n1, void *scratch) {
  ecenet_amx_gemm_compute(transA, m, n, k, alpha, a, lda, packed_b, beta, c, ldc, bias, m0, m1, n0, n1, scratch);
}
void ecenet_amx_gemm_taps_compute(long m, long n, long k, long taps, const long *offsets, float alpha,
                                  const float *a, long lda, const void *packed_b, float beta, float *c, long ldc,
                                  long m0, long m1, long n0, long n1, void *scratch) {
  gemm_taps_compute(m, n, k, taps, offsets, alpha, a, lda, (const uint16_t *)packed_b, beta, c, ldc, m0, m1, n0, n1,
                    (uint32_t *)scratch);
}
void ecenet_amx_gemm_taps_compute_emulated(long m, long n, long k, long taps, const long *offsets, float alpha,
                                           const float *a, long lda, const void *packed_b, float beta, float *c,
                                           long ldc, long m0, long m1, long n0, long n1, void *scratch) {
  ecenet_amx_gemm_taps_compute(m, n, k, taps, offsets, alpha, a, lda, packed_b, beta, c, ldc, m0, m1, n0, n1,
                               scratch);
}
void ecenet_amx_gemm_ktaps_compute(long m, long n, long k, long taps, const long *offsets, float alpha,
                                   const float *a, long lda, const void *packed_b, float beta, float *c, long ldc,
                                   long ctap, long m0, long m1, long n0, long n1, void *scratch) {
  gemm_ktaps_compute(m, n, k, taps, offsets, alpha, a, lda, (const uint16_t *)packed_b, beta, c, ldc, ctap,
                     m0, m1, n0, n1, (uint32_t *)scratch);
}
void ecenet_amx_gemm_ktaps_compute_emulated(long m, long n, long k, long taps, const long *offsets, float alpha,
                                            const float *a, long lda, const void *packed_b, float beta, float *c,
                                            long ldc, long ctap, long m0, long m1, long n0, long n1,
                                            void *scratch) {
  ecenet_amx_gemm_ktaps_compute(m, n, k, taps, offsets, alpha, a, lda, packed_b, beta, c, ldc, ctap, m0, m1, n0, n1,
                                scratch);
}
#endif
