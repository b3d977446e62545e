// MPI shims: wrap the handle macros of OpenMPI (MPI_COMM_WORLD, MPI_FLOAT,
// MPI_SUM, MPI_IN_PLACE) that Swift's importer cannot see.
#include "CShims.h"
#include <mpi/mpi.h>
#include <stdlib.h>

int ecenet_mpi_init(int required_level, int *provided) {
  // A rank usually owns one core, which its compute thread shares with the
  // communication thread (GradientBuckets). While a blocking allreduce waits
  // for other ranks, OpenMPI spins on that core and takes it from backward,
  // unless the node is oversubscribed. Yielding while idle measured 2.76 ->
  // 2.18 s per Swin-T step at 8 ranks on 16 cores (BENCHMARKS.md, session 5).
  // A value the user gave (mpirun -x / --mca) is kept (overwrite = 0).
  setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
  static const int levels[4] = {MPI_THREAD_SINGLE, MPI_THREAD_FUNNELED,
                                MPI_THREAD_SERIALIZED, MPI_THREAD_MULTIPLE};
  int got = MPI_THREAD_SINGLE;
  int rc = MPI_Init_thread(NULL, NULL, levels[required_level & 3], &got);
  *provided = 0;
  for (int i = 0; i < 4; i++) if (levels[i] == got) *provided = i;
  return rc;
}
// The value MPI runs with for the boolean control variable `name`, read
// through the MPI tool interface (MPI_T); -1 when it cannot be read.
int ecenet_mpi_cvar_bool(const char *name) {
  int provided = 0, index = 0, count = 0, value = -1;
  if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) return -1;
  MPI_T_cvar_handle handle;
  if (MPI_T_cvar_get_index(name, &index) == MPI_SUCCESS &&
      MPI_T_cvar_handle_alloc(index, NULL, &handle, &count) == MPI_SUCCESS) {
    long long raw = 0;  // OpenMPI reads bools as MPI_INT; room to spare
    if (count == 1 && MPI_T_cvar_read(handle, &raw) == MPI_SUCCESS) value = (int)raw != 0;
    MPI_T_cvar_handle_free(&handle);
  }
  MPI_T_finalize();
  return value;
}
int ecenet_mpi_initialized(void) { int f = 0; MPI_Initialized(&f); return f; }
int ecenet_mpi_finalized(void) { int f = 0; MPI_Finalized(&f); return f; }
int ecenet_mpi_finalize(void) { return MPI_Finalize(); }
int ecenet_mpi_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
int ecenet_mpi_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }

// MPI counts are int; large buffers are reduced in chunks below INT_MAX.
#define CHUNK (1L << 30)
#define ALLREDUCE(T, MT, OP)                                                   \
  for (long off = 0; off < count; off += CHUNK) {                              \
    long n = count - off < CHUNK ? count - off : CHUNK;                        \
    int rc = MPI_Allreduce(MPI_IN_PLACE, (T *)buf + off, (int)n, MT, OP,       \
                           MPI_COMM_WORLD);                                    \
    if (rc != MPI_SUCCESS) return rc;                                          \
  }                                                                            \
  return MPI_SUCCESS;

int ecenet_mpi_allreduce_sum_float(float *buf, long count) { ALLREDUCE(float, MPI_FLOAT, MPI_SUM) }
int ecenet_mpi_allreduce_sum_double(double *buf, long count) { ALLREDUCE(double, MPI_DOUBLE, MPI_SUM) }
int ecenet_mpi_allreduce_max_double(double *buf, long count) { ALLREDUCE(double, MPI_DOUBLE, MPI_MAX) }
int ecenet_mpi_allreduce_sum_int64(int64_t *buf, long count) { ALLREDUCE(int64_t, MPI_INT64_T, MPI_SUM) }

int ecenet_mpi_bcast_bytes(void *buf, long count, int root) {
  for (long off = 0; off < count; off += CHUNK) {
    long n = count - off < CHUNK ? count - off : CHUNK;
    int rc = MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return rc;
  }
  return MPI_SUCCESS;
}
int ecenet_mpi_bcast_float(float *buf, long count, int root) {
  return ecenet_mpi_bcast_bytes(buf, count * (long)sizeof(float), root);
}
int ecenet_mpi_allgather_bytes(const void *send, long count, void *recv) {
  return MPI_Allgather(send, (int)count, MPI_BYTE, recv, (int)count, MPI_BYTE, MPI_COMM_WORLD);
}
int ecenet_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
void ecenet_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
void ecenet_mpi_error_string(int code, char *buf, int buflen) {
  char tmp[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, tmp, &len) != MPI_SUCCESS) len = 0;
  tmp[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING - 1] = 0;
  int i = 0;
  for (; i < buflen - 1 && tmp[i]; i++) buf[i] = tmp[i];
  if (buflen > 0) buf[i] = 0;
}
int ecenet_mpi_errors_return(void) {
  return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}
