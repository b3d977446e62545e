// bf16 GEMM with fp32 accumulation on Intel AMX tiles (`tdpbf16ps`): the same
// contract and the same packed op(B) as bf16_gemm.h (pack B with
// `ecenet_bf16_gemm_pack_b`), so it is a drop-in `compute` for the bf16 path
// on CPUs with AMX-BF16 (Sapphire Rapids and later).
//
// Written on a machine without AMX (the development machine is AMD): its
// tests run the same driver, packing and stores with the tile instructions
// emulated in C (`ecenet_amx_gemm_compute_emulated`). `ecenet-dist bench gemm`
// checks the real kernel against the emulation and times it where AMX exists
// (first on an AMX Xeon in session 15: every check passed). Tensor uses it by
// default on AMX CPUs (ECENET_AMX=0 opts out), after the real tiles agreed
// with their emulation on small GEMMs (AMXGEMM.selfCheck).
#ifndef ECENET_AMX_GEMM_H
#define ECENET_AMX_GEMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// 1 when the CPU has AMX-TILE, AMX-BF16 and AVX512_BF16 (the packing uses it),
// the OS enables the tile state in XCR0, and Linux granted this process the
// tile data permission (arch_prctl ARCH_REQ_XCOMP_PERM, requested here once;
// without it the first tile instruction kills the process). 0 otherwise.
int ecenet_amx_enable(void);

// Rows per tile block (32: two 16-row tiles); columns per panel are 32, as bf16's.
long ecenet_amx_gemm_mr(void);
// Bytes of A scratch one `compute` call needs (64-byte aligned).
size_t ecenet_amx_gemm_a_scratch_bytes(void);

// `ecenet_bf16_gemm_compute`'s contract on AMX tiles; only after
// `ecenet_amx_enable()` returned 1. Each element's sum runs in the same order
// whatever the ranges (any split of C gives bit-identical results).
void ecenet_amx_gemm_compute(int transA, long m, long n, long k, float alpha,
                             const float *a, long lda, const void *packed_b,
                             float beta, float *c, long ldc, const float *bias,
                             long m0, long m1, long n0, long n1, void *scratch);

// The same with the tile instructions emulated in C (`tdpbf16ps` as the Intel
// SDM writes it: per k pair, the even then the odd product added in fp32),
// for tests on CPUs without AMX; needs AVX512_BF16 only. Slow.
void ecenet_amx_gemm_compute_emulated(int transA, long m, long n, long k, float alpha,
                                      const float *a, long lda, const void *packed_b,
                                      float beta, float *c, long ldc, const float *bias,
                                      long m0, long m1, long n0, long n1, void *scratch);

// `ecenet_bf16_gemm_taps_compute`'s contract (the shifted-taps conv GEMM, same
// packed op(B_t)) on AMX tiles, its scratch bytes, and the emulated variant.
size_t ecenet_amx_gemm_taps_scratch_bytes(long span);
void ecenet_amx_gemm_taps_compute(long m, long n, long k, long taps, const long *offsets, float alpha,
                                  const float *a, long lda, const void *packed_b, float beta,
                                  float *c, long ldc, long m0, long m1, long n0, long n1, void *scratch);
void ecenet_amx_gemm_taps_compute_emulated(long m, long n, long k, long taps, const long *offsets, float alpha,
                                           const float *a, long lda, const void *packed_b, float beta,
                                           float *c, long ldc, long m0, long m1, long n0, long n1,
                                           void *scratch);

// `ecenet_bf16_gemm_ktaps_compute`'s contract (the conv's weight gradient) on
// AMX tiles, its scratch bytes, and the emulated variant.
size_t ecenet_amx_gemm_ktaps_scratch_bytes(long span);
void ecenet_amx_gemm_ktaps_compute(long m, long n, long k, long taps, const long *offsets, float alpha,
                                   const float *a, long lda, const void *packed_b, float beta,
                                   float *c, long ldc, long ctap, long m0, long m1, long n0, long n1,
                                   void *scratch);
void ecenet_amx_gemm_ktaps_compute_emulated(long m, long n, long k, long taps, const long *offsets, float alpha,
                                            const float *a, long lda, const void *packed_b, float beta,
                                            float *c, long ldc, long ctap, long m0, long m1, long n0, long n1,
                                            void *scratch);

#ifdef __cplusplus
}
#endif

#endif
