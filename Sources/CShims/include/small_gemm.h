// fp32 GEMM for small operands on AVX-512F, without packing: the per-(window,
// head) GEMMs of window attention (Swin: L = 49 or 144 tokens, head dim 32),
// where OpenBLAS's per-call overhead and packing cost more than the sums.
// C = alpha·op(A)·op(B) + beta·C, row-major, cblas semantics (the same sums as
// cblas_sgemm: each element's K sum in k order with one FMA per k, except the
// last N mod 16 ≤ 3 columns when A is not transposed and B is, which are dot
// products of 16 partial sums).
//
// Not a BLAS: one thread, no allocation, bounded sizes (`supported`). op(B)
// must fit an L1-sized stack buffer (transB: it is transposed there once per
// call); A and C are read and written in place. May only be called when
// `ecenet_cpu_has_avx512f()` (misc_shim.c) returns 1 (elsewhere on x86 it
// would fault with an illegal instruction; on non-x86 builds it is a plain
// loop).
//
// Letters: M, N, K the GEMM sizes (op(A) M×K, op(B) K×N, C M×N).
#ifndef ECENET_SMALL_GEMM_H
#define ECENET_SMALL_GEMM_H

#ifdef __cplusplus
extern "C" {
#endif

// Floats of op(B), its N rounded up to 16, that the kernel takes (8192: 32 KiB,
// an L1 data cache).
long ecenet_small_sgemm_max_b_floats(void);

// 1 when `ecenet_small_sgemm` takes these sizes: M, N, K ≥ 0 and
// K · roundup(N, 16) ≤ max_b_floats (so K ≤ 512, and N ≤ 8192 when K ≥ 1). M is
// not bounded (rows run one register tile at a time).
int ecenet_small_sgemm_supported(long m, long n, long k);

// 1 when this file was compiled with optimization (__OPTIMIZE__). SwiftPM debug
// builds compile C at -O0, where this kernel is slower than OpenBLAS, so
// `sgemm` only routes to it when this is 1 (tests call it either way).
int ecenet_small_sgemm_optimized(void);

// C[M×N] = alpha·op(A)·op(B) + beta·C. op(A) is M×K (A is M×K with row stride
// lda, or K×M when transA); op(B) is K×N (B is K×N with row stride ldb, or N×K
// when transB). beta == 0: C is only written (it may hold NaN); K == 0 or
// alpha == 0: C = beta·C. Sizes must be `supported`.
void ecenet_small_sgemm(int transA, int transB, long m, long n, long k, float alpha,
                        const float *a, long lda, const float *b, long ldb,
                        float beta, float *c, long ldc);

#ifdef __cplusplus
}
#endif
#endif
