// bf16 GEMM with fp32 accumulation (AVX512_BF16 `vdpbf16ps`), the kernel
// behind Tensor's `gemmBF16`: C = alpha·op(A)·op(B) + beta·C, row-major,
// cblas semantics, where the entries of op(A) and op(B) are first rounded to
// bf16 (round to nearest even) and the products summed in fp32 — the GEMM of
// PyTorch's bf16 autocast, with fp32 inputs and an fp32 (unrounded) output.
//
// Not a BLAS: no threads and no allocation here. The caller packs op(B) once
// (`pack_b`, whole or by 32-column panels, possibly from several threads),
// then computes disjoint blocks of C (`compute`: row ranges, or column
// ranges when M is small; one per thread, each with its own A scratch).
// `pack_b` and `compute` may only be called when `ecenet_cpu_has_avx512_bf16()`
// returns 1 (elsewhere on x86 they would fault with an illegal instruction;
// on non-x86 builds they are empty).
//
// Letters: M, N, K the GEMM sizes; K2 = ceil(K/2) the number of k pairs.
#ifndef ECENET_BF16_GEMM_H
#define ECENET_BF16_GEMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// 1 when the CPU has AVX512F/BW/VL and AVX512_BF16 and the OS saves the zmm
// state (xgetbv); 0 otherwise and on non-x86 builds.
int ecenet_cpu_has_avx512_bf16(void);
// 1 when the CPU reports AMX tiles with bf16 (CPUID 7.0 EDX bits 22 and 24),
// which no kernel here uses; for the log's advice only.
int ecenet_cpu_has_amx_bf16(void);

// Columns per packed panel of op(B) (column ranges of `pack_b` start on a
// multiple of it) and rows per microkernel tile (row ranges of
// `compute` that start on a multiple of it waste no edge tiles).
long ecenet_bf16_gemm_nr(void);
long ecenet_bf16_gemm_mr(void);

// Bytes of the packed op(B): ceil(N/32) panels of K2 pairs × 32 columns × 2 bf16.
size_t ecenet_bf16_gemm_packed_b_bytes(long k, long n);

// Packs the 32-column panels covering columns [n0, n1) of op(B) (K×N; B is
// K×N with row stride ldb, or N×K when transB) into `packed` (the whole
// layout, `packed_b_bytes` long). n0 must be a multiple of 32; n1 ≤ n.
// Columns ≥ n and the second half of the last pair when K is odd are zero.
void ecenet_bf16_gemm_pack_b(int transB, long k, long n, const float *b, long ldb,
                             long n0, long n1, void *packed);

// Bytes of A scratch one `compute` call needs (64-byte aligned).
size_t ecenet_bf16_gemm_a_scratch_bytes(void);

// The block rows [m0, m1) × columns [n0, n1) of C = alpha·op(A)·op(B) + beta·C
// from the packed op(B) (n0 a multiple of 32; ranges are clipped to M, N).
// op(A) is M×K (A is M×K with row stride lda, or K×M when transA). With
// beta == 0, C is only written (it may hold NaN). `bias` (NULL: none) is
// N floats added to every row of C, bias[j] to column j (a linear layer's bias,
// added in the GEMM's store instead of a pass over C). `scratch` holds
// `a_scratch_bytes` bytes, 64-byte aligned, private to this call. Each
// element's sum runs in the same order whatever the ranges, so any split of C
// over threads gives bit-identical results.
void ecenet_bf16_gemm_compute(int transA, long m, long n, long k, float alpha,
                              const float *a, long lda, const void *packed_b,
                              float beta, float *c, long ldc, const float *bias,
                              long m0, long m1, long n0, long n1, void *scratch);


// The shifted-taps GEMM (gemm_driver.h, `gemm_taps_compute`): rows [m0, m1) ×
// columns [n0, n1) of C = alpha · Σ_t A[row + offsets[t], :] · op(B_t) + beta · C,
// A not transposed with m + max(offsets) rows (offsets ≥ 0), `packed_b` the
// taps' packed op(B_t) one after another (`packed_b_bytes(k, n)` bytes each),
// `scratch` `taps_scratch_bytes(max(offsets))` bytes, 64-byte aligned. Any split
// of C gives bit-identical results.
size_t ecenet_bf16_gemm_taps_scratch_bytes(long span);
void ecenet_bf16_gemm_taps_compute(long m, long n, long k, long taps, const long *offsets, float alpha,
                                  const float *a, long lda, const void *packed_b, float beta,
                                  float *c, long ldc, long m0, long m1, long n0, long n1, void *scratch);

// The K-shifted taps GEMM (gemm_driver.h, `gemm_ktaps_compute`): rows [m0, m1) ×
// columns [n0, n1) of C_t = alpha · Σ_{q<k} A[q + offsets[t], i] · B[q, j] + beta · C_t
// for every tap t, C_t at c + t·ctap; A is K×M (op(A) = Aᵀ) with k + max(offsets)
// rows (offsets ≥ 0), `packed_b` B (k × n) packed by `pack_b` with transB 0,
// `scratch` `ktaps_scratch_bytes(max(offsets))` bytes, 64-byte aligned. Any split
// of C gives bit-identical results.
size_t ecenet_bf16_gemm_ktaps_scratch_bytes(long span);
void ecenet_bf16_gemm_ktaps_compute(long m, long n, long k, long taps, const long *offsets, float alpha,
                                   const float *a, long lda, const void *packed_b, float beta,
                                   float *c, long ldc, long ctap, long m0, long m1, long n0, long n1,
                                   void *scratch);

#ifdef __cplusplus
}
#endif
#endif
