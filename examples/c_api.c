/* The C API in one file: load a model (.kpb, or .kir with an .npz of weights), run it on a
 * fixed pattern, x[i] = sin(0.01 i) with batch 1, and print the top-5 classes.
 *   c_api MODEL.kpb|MODEL.kir [WEIGHTS.npz] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/kiln_c.h"

static int fail(const char* what) {
  fprintf(stderr, "error: %s: %s\n", what, kiln_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: c_api MODEL.kpb|MODEL.kir [WEIGHTS.npz]\n");
    return 2;
  }
  kiln_session* session = NULL;
  if (kiln_session_create(argv[1], argc > 2 ? argv[2] : NULL, "onednn", 0, &session) != KILN_OK)
    return fail("kiln_session_create");

  /* One image-shaped input [1, 3, H, W]; the example models take 3x32x32 or larger. */
  const int64_t shape[4] = {1, 3, 32, 32};
  const size_t n = 3 * 32 * 32;
  float* x = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; ++i) x[i] = sinf(0.01f * (float)i);
  kiln_tensor input = {x, 4, shape};
  kiln_outputs* outputs = NULL;
  if (kiln_session_run(session, &input, 1, &outputs) != KILN_OK) {
    free(x);
    kiln_session_destroy(session);
    return fail("kiln_session_run");
  }
  const float* logits = kiln_outputs_data(outputs, 0);
  const int rank = kiln_outputs_rank(outputs, 0);
  const int64_t classes = kiln_outputs_shape(outputs, 0)[rank - 1];
  /* top-5 by repeated selection (ties keep the lower class, like a stable partial sort) */
  int64_t taken[5];
  for (int k = 0; k < 5 && k < classes; ++k) {
    int64_t best = -1;
    for (int64_t c = 0; c < classes; ++c) {
      int used = 0;
      for (int j = 0; j < k; ++j) used |= taken[j] == c;
      if (!used && (best < 0 || logits[c] > logits[best])) best = c;
    }
    taken[k] = best;
    printf("%d class %lld score %.4f\n", k + 1, (long long)best, logits[best]);
  }
  kiln_outputs_destroy(outputs);
  kiln_session_destroy(session);
  free(x);
  return 0;
}
