// In-register transpose of 16 rows of 16 floats (r[i][j] → r[j][i]), shared by
// the fp32 GEMM's B packing (f32_gemm.c) and the small GEMM's op(B) transpose
// (small_gemm.c). Private to CShims (not under include/). x86-64 only: include
// it after <immintrin.h>.
#ifndef ECENET_TRANSPOSE16_H
#define ECENET_TRANSPOSE16_H

static inline __attribute__((always_inline, target("avx512f"))) void transpose16(__m512 r[16]) {
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

#endif
