// CShims: the C surface ecenet-dist needs from OpenMPI, OpenBLAS, libpng,
// libjpeg-turbo and zstd. Only what Swift cannot express lives here: MPI's
// handle macros (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE), libpng's
// setjmp-based error handling, and zstd's macro constants. Everything else
// (cblas_sgemm, tjDecompress2, ZSTD_compress) Swift calls directly.
#ifndef ECENET_CSHIMS_H
#define ECENET_CSHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <cblas.h>
#include <turbojpeg.h>
#include <zstd.h>
#include "amx_gemm.h"
#include "bf16_gemm.h"
#include "f32_gemm.h"
#include "small_gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

// 16 floats stored past the caches (a non-temporal store; `p` 64-byte
// aligned): for outputs far larger than the last-level cache, it saves reading
// each line before it is overwritten. Swift has no such intrinsic; it sees the
// vector type as SIMD16<Float> and inlines this static function.
typedef float ecenet_f32x16 __attribute__((ext_vector_type(16)));
static inline void ecenet_store16_nontemporal(float *p, ecenet_f32x16 v) {
  __builtin_nontemporal_store(v, (ecenet_f32x16 *)p);
}
// Orders this thread's non-temporal stores before its later stores (sfence),
// so that a thread that sees the pool's completion also sees the data.
static inline void ecenet_store_fence(void) {
#if defined(__x86_64__)
  __builtin_ia32_sfence();
#endif
}

// ---- MPI (world communicator only; rank/size, collectives on float buffers) ----
// All return the MPI error code (0 = MPI_SUCCESS). `provided` receives the
// thread level granted: 0 SINGLE, 1 FUNNELED, 2 SERIALIZED, 3 MULTIPLE.
int ecenet_mpi_init(int required_level, int *provided);
int ecenet_mpi_initialized(void);
int ecenet_mpi_cvar_bool(const char *name);
int ecenet_mpi_finalized(void);
int ecenet_mpi_finalize(void);
int ecenet_mpi_rank(int *rank);
int ecenet_mpi_size(int *size);
int ecenet_mpi_allreduce_sum_float(float *buf, long count);
int ecenet_mpi_allreduce_sum_double(double *buf, long count);
int ecenet_mpi_allreduce_max_double(double *buf, long count);
int ecenet_mpi_allreduce_sum_int64(int64_t *buf, long count);
int ecenet_mpi_bcast_bytes(void *buf, long count, int root);
int ecenet_mpi_bcast_float(float *buf, long count, int root);
int ecenet_mpi_allgather_bytes(const void *send, long count, void *recv);
int ecenet_mpi_barrier(void);
void ecenet_mpi_abort(int code);
// Writes the MPI error string for `code` into buf (NUL-terminated).
void ecenet_mpi_error_string(int code, char *buf, int buflen);
// Sets MPI_ERRORS_RETURN on the world communicator so errors come back as codes.
int ecenet_mpi_errors_return(void);

// ---- PNG (libpng full API; errors come back as messages, never longjmp into Swift) ----
// Decodes a PNG held in memory. mode 0: label/grey image, raw 8-bit sample
// values or palette indices exactly as stored (1 channel; 16-bit or colour
// images are rejected with a message). mode 1: RGB, 8 bits per channel (grey,
// palette, alpha and 16-bit are converted). On success returns 0 and *out is a
// malloc'd buffer of w*h*channels bytes that the caller frees with free().
// On failure returns -1 and writes a message to err.
int ecenet_png_decode(const uint8_t *data, size_t len, int mode,
                      uint8_t **out, int *width, int *height, int *channels,
                      char *err, size_t errlen);
// Encodes w*h*channels bytes (channels 1 or 3). With a palette (ncolors > 0,
// rgb triplets) a 1-channel image is written as an indexed PNG. *out is
// malloc'd; returns 0 or -1 with a message.
int ecenet_png_encode(const uint8_t *pixels, int width, int height, int channels,
                      const uint8_t *palette_rgb, int ncolors,
                      uint8_t **out, size_t *outlen, char *err, size_t errlen);

// ---- zstd ----
// Frame content size: >=0 known size, -1 unknown, -2 not a valid frame.
long long ecenet_zstd_frame_size(const void *src, size_t len);

// ---- OpenBLAS ----
void ecenet_blas_set_threads(int n);
int ecenet_blas_get_threads(void);
const char *ecenet_blas_corename(void);
// 1 when this CPU (and OS) supports AVX2+FMA / AVX-512F, else 0.
int ecenet_cpu_has_avx2(void);
int ecenet_cpu_has_avx512f(void);

// A 64-byte-aligned scratch buffer of at least `bytes`, owned by the calling
// thread: grown on demand, kept for the thread's next call, freed when the thread
// exits. For work that many threads start thousands of times a step (attention's
// per-slice GEMMs), where taking buffers from the shared pool serialises them on
// its lock. The previous contents are not kept; NULL when out of memory. The
// buffer never shrinks: each thread keeps the size of its largest on-thread GEMM
// (packed B plus an A block; the SAU's per-slice GEMMs at 640²: about 3.5 MB).
void *ecenet_thread_scratch(size_t bytes);

// y[r, 0..<n] = softmax(x[r, 0..<n]) for r < rows (row strides ldx, ldy; y may
// be x), on AVX-512F (softmax_rows.c): call only when ecenet_cpu_has_avx512f().
// Values agree with Activation.swift's Swift rows to float rounding (FMAs
// here, separate multiplies and adds there); below −87.34 from the row's max, 0.
void ecenet_softmax_rows(const float *x, float *y, long rows, long n, long ldx, long ldy);

// Exact GELU on AVX-512F (gelu.c): y[i] = x[i]·Φ(x[i]) for i < n; and its
// backward dx[i] (=|+= when accumulate) dy[i]·(Φ(x[i]) + x[i]·φ(x[i])). Call only
// when ecenet_cpu_has_avx512f(). Φ and Φ + x·φ are piecewise polynomials
// (gelu_tables.h), within 4.1e-8 of Double; Activation.swift's Swift loops are
// within their fastErf's 4.2e-7.
void ecenet_gelu_forward(const float *x, float *y, long n);
void ecenet_gelu_backward(const float *x, const float *dy, float *dx, long n, int accumulate);

#ifdef __cplusplus
}
#endif
#endif
