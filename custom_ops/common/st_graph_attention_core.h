// STGraphAttention arithmetic shared by the CUDA kernels and their host twin
// (custom_ops/tests/cuda_twin.cc), so that CI, which has no GPU, still runs this code.
// No ORT or CUDA headers: plain functions, host and device.
#pragma once

#include "kernel_core.h"  // FINSTA_HD, OnlineSoftmax

namespace finsta {
namespace core {

// Key tokens of query token i: frames [t - r, t + r] clipped to [0, T); returns the first key
// token and writes the count.
FINSTA_HD int64_t KeyRange(int64_t i, int64_t P, int64_t T, int64_t r, int64_t* count) {
  const int64_t t = i / P;
  const int64_t t0 = t - r < 0 ? 0 : t - r;
  const int64_t t1 = t + r > T - 1 ? T - 1 : t + r;
  *count = (t1 - t0 + 1) * P;
  return t0 * P;
}

FINSTA_HD float InvNorm(float sum_sq) {
  const float n = sqrtf(sum_sq);
  return 1.f / (n > 1e-12f ? n : 1e-12f);
}

// Edge weight A(i, j) from the cosine similarity s of the two tokens (already normalised).
FINSTA_HD float EdgeWeight(float s, float tau, bool self_loop) {
  return self_loop ? 1.f : (s >= tau ? s : 0.f);
}

}  // namespace core
}  // namespace finsta
