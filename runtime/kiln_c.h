/* kiln's C API: load a compiled-format model (.kir or .kpb, optional .npz weights), compile it
 * once, run it on float buffers from any thread. Every call returns a kiln_status; on failure
 * kiln_last_error() gives the message (per thread, valid until that thread's next call). */
#ifndef KILN_C_H
#define KILN_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kiln_status {
  KILN_OK = 0,
  KILN_INVALID_ARGUMENT = 1, /* a null pointer, a bad backend name, a wrong input count/shape */
  KILN_LOAD_ERROR = 2,       /* the model or weights file cannot be read or is malformed */
  KILN_COMPILE_ERROR = 3,    /* passes or the backend rejected the graph (unbound weights, …) */
  KILN_RUN_ERROR = 4         /* the run failed */
} kiln_status;

typedef struct kiln_session kiln_session;
typedef struct kiln_outputs kiln_outputs;

/* One input: row-major f32 data of `rank` dims (the symbolic batch N is taken from them). */
typedef struct kiln_tensor {
  const float* data;
  int rank;
  const int64_t* shape;
} kiln_tensor;

/* Creates a session. `model_path`: .kir or .kpb; `weights_path`: .npz bound to the graph's
 * weights by name, or NULL (a .kpb carries its weights); `backend`: "onednn", "reference" or
 * NULL (onednn); `threads`: intra-op threads, 0 for OMP_NUM_THREADS or every core. */
kiln_status kiln_session_create(const char* model_path, const char* weights_path,
                                const char* backend, int threads, kiln_session** session);
void kiln_session_destroy(kiln_session* session);

size_t kiln_session_num_inputs(const kiln_session* session);
size_t kiln_session_num_outputs(const kiln_session* session);

/* Runs on `num_inputs` tensors (graph input order). Thread-safe. The outputs belong to the
 * caller: read them with kiln_outputs_*, free them with kiln_outputs_destroy. */
kiln_status kiln_session_run(const kiln_session* session, const kiln_tensor* inputs,
                             size_t num_inputs, kiln_outputs** outputs);

size_t kiln_outputs_count(const kiln_outputs* outputs);
/* Output i: row-major f32 data, its rank and dims (valid until kiln_outputs_destroy). */
const float* kiln_outputs_data(const kiln_outputs* outputs, size_t i);
int kiln_outputs_rank(const kiln_outputs* outputs, size_t i);
const int64_t* kiln_outputs_shape(const kiln_outputs* outputs, size_t i);
void kiln_outputs_destroy(kiln_outputs* outputs);

/* The message of this thread's last failed call ("" if none). */
const char* kiln_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* KILN_C_H */
