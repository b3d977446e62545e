// fp32 GEMM on AVX-512F, the kernel behind Tensor's `gemmF32Kernel`:
// C = alpha·op(A)·op(B) + beta·C, row-major, cblas semantics (the same sums
// as cblas_sgemm, in a different fp32 order).
//
// Not a BLAS: no threads and no allocation here. The caller packs op(B) once
// (`pack_b`, whole or by 32-column panels, possibly from several threads),
// then computes disjoint blocks of C (`compute`: row ranges, or column
// ranges when M is small; one per thread, each with its own A scratch).
// `pack_b` and `compute` may only be called when `ecenet_cpu_has_avx512f()`
// (misc_shim.c) returns 1 (elsewhere on x86 they would fault with an illegal
// instruction; on non-x86 builds they are empty).
//
// Letters: M, N, K the GEMM sizes.
#ifndef ECENET_F32_GEMM_H
#define ECENET_F32_GEMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Columns per packed panel of op(B) (column ranges of `pack_b` start on a
// multiple of it) and rows per microkernel tile (row ranges of `compute`
// that start on a multiple of it waste no edge tiles).
long ecenet_f32_gemm_nr(void);
long ecenet_f32_gemm_mr(void);
// Rows per A block of `compute` (a whole number of MR strips): a caller that
// walks C in row blocks of its own uses it so each is one packed A block.
long ecenet_f32_gemm_mc(void);

// 1 when this file was compiled with optimization (__OPTIMIZE__). Unoptimized
// (SwiftPM debug builds compile C at -O0) the kernel is ~40× slower than
// OpenBLAS, so `sgemm` only routes to it when this is 1.
int ecenet_f32_gemm_optimized(void);

// Bytes of the packed op(B): ceil(N/32) panels of K rows × 32 floats.
size_t ecenet_f32_gemm_packed_b_bytes(long k, long n);

// Packs the 32-column panels covering columns [n0, n1) of op(B) (K×N; B is
// K×N with row stride ldb, or N×K when transB) into `packed` (the whole
// layout, `packed_b_bytes` long). n0 must be a multiple of 32; n1 ≤ n.
// Columns ≥ n are zero.
void ecenet_f32_gemm_pack_b(int transB, long k, long n, const float *b, long ldb,
                            long n0, long n1, void *packed);

// Bytes of A scratch one `compute` call needs (64-byte aligned).
size_t ecenet_f32_gemm_a_scratch_bytes(void);

// The block rows [m0, m1) × columns [n0, n1) of C = alpha·op(A)·op(B) + beta·C
// from the packed op(B) (n0 a multiple of 32; ranges are clipped to M, N).
// op(A) is M×K (A is M×K with row stride lda, or K×M when transA). With
// beta == 0, C is only written (it may hold NaN). `bias` (NULL: none) is
// N floats added to every row of C, bias[j] to column j (a linear layer's bias,
// added in the GEMM's store instead of a pass over C). `scratch` holds
// `a_scratch_bytes` bytes, 64-byte aligned, private to this call. Each
// element's sum runs in the same order whatever the ranges, so any split of C
// over threads gives bit-identical results.
void ecenet_f32_gemm_compute(int transA, long m, long n, long k, float alpha,
                             const float *a, long lda, const void *packed_b,
                             float beta, float *c, long ldc, const float *bias,
                             long m0, long m1, long n0, long n1, void *scratch);

// `compute` whose C stores go past the caches (non-temporal, then a store
// fence) where that is safe: beta == 0 and K within one K block (C written
// once, never read back), full 32-column tiles on 64-byte-aligned rows. For a
// C far larger than the caches, whose lines ordinary stores would first read
// from memory. The same values as `compute`.
void ecenet_f32_gemm_compute_streaming(int transA, long m, long n, long k, float alpha,
                                       const float *a, long lda, const void *packed_b,
                                       float beta, float *c, long ldc, const float *bias,
                                       long m0, long m1, long n0, long n1, void *scratch);

// The shifted-taps GEMM (gemm_driver.h, `gemm_taps_compute`): rows [m0, m1) ×
// columns [n0, n1) of C = alpha · Σ_t A[row + offsets[t], :] · op(B_t) + beta · C,
// A not transposed with m + max(offsets) rows (offsets ≥ 0), `packed_b` the
// taps' packed op(B_t) one after another (`packed_b_bytes(k, n)` bytes each),
// `scratch` `taps_scratch_bytes(max(offsets))` bytes, 64-byte aligned. Any split
// of C gives bit-identical results.
size_t ecenet_f32_gemm_taps_scratch_bytes(long span);
void ecenet_f32_gemm_taps_compute(long m, long n, long k, long taps, const long *offsets, float alpha,
                                  const float *a, long lda, const void *packed_b, float beta,
                                  float *c, long ldc, long m0, long m1, long n0, long n1, void *scratch);

// The K-shifted taps GEMM (gemm_driver.h, `gemm_ktaps_compute`): rows [m0, m1) ×
// columns [n0, n1) of C_t = alpha · Σ_{q<k} A[q + offsets[t], i] · B[q, j] + beta · C_t
// for every tap t, C_t at c + t·ctap; A is K×M (op(A) = Aᵀ) with k + max(offsets)
// rows (offsets ≥ 0), `packed_b` B (k × n) packed by `pack_b` with transB 0,
// `scratch` `ktaps_scratch_bytes(max(offsets))` bytes, 64-byte aligned. Any split
// of C gives bit-identical results.
size_t ecenet_f32_gemm_ktaps_scratch_bytes(long span);
void ecenet_f32_gemm_ktaps_compute(long m, long n, long k, long taps, const long *offsets, float alpha,
                                  const float *a, long lda, const void *packed_b, float beta,
                                  float *c, long ldc, long ctap, long m0, long m1, long n0, long n1,
                                  void *scratch);

#ifdef __cplusplus
}
#endif
#endif
