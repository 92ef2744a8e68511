// STGraphAttention arithmetic shared by the CPU kernel, the CUDA kernels and their host twin
// (custom_ops/tests/cuda_twin.cc), so that CI, which has no GPU, still runs this code.
// No ORT or CUDA headers: plain functions, host and device.
#pragma once

#include "kernel_core.h"  // FINSTA_HD, OnlineSoftmax

namespace finsta {
namespace core {

// The frame radius the kernels use: r >= T - 1 reaches every frame, so it is clamped to T - 1
// before any arithmetic (t + r overflowed int64 for r near its limit and the key count wrapped).
FINSTA_HD int64_t ClampRadius(int64_t r, int64_t T) { return r < T ? r : (T > 0 ? T - 1 : 0); }

// Key tokens of query token i: frames [t - r, t + r] clipped to [0, T); returns the first key
// token and writes the count. r <= T - 1 (ClampRadius): t + r cannot overflow.
FINSTA_HD int64_t KeyRange(int64_t i, int64_t P, int64_t T, int64_t r, int64_t* count) {
  const int64_t t = i / P;
  const int64_t t0 = t - r < 0 ? 0 : t - r;
  const int64_t t1 = t + r > T - 1 ? T - 1 : t + r;
  *count = (t1 - t0 + 1) * P;
  return t0 * P;
}

// Row normalisation xn = x / max(|x|, 1e-12) without forming |x|^2, which overflows float32 above
// |x| ~ 1e19 (dropping the token's edges in silence) and underflows below ~1e-19: with
// m = max_c |x_c|, xn_c = (x_c / m) / |x / m|. AbsMaxStep folds m over the row, NaN sticking;
// RowNormScale then gives xn_c = x_c / div * mul from m and sum_c (x_c / m)^2.
struct NormScale {
  float div, mul;
};

FINSTA_HD float AbsMaxStep(float m, float v) {
  const float a = fabsf(v);
  return (a > m || a != a) ? a : m;
}

FINSTA_HD NormScale RowNormScale(float m, float sum_sq_scaled) {
  if (!(m <= 3.40282347e38f)) return NormScale{NAN, NAN};  // NaN or inf in the row: every xn_c is NaN
  if (m == 0.f) return NormScale{1.f, 0.f};
  const float root = sqrtf(sum_sq_scaled);  // |x / m|, in [1, sqrt(D)]
  if (m * root < 1e-12f) return NormScale{1e-12f, 1.f};
  return NormScale{m, 1.f / root};
}

// Edge weight A(i, j) from the cosine similarity s of the two tokens (already normalised). A NaN
// similarity (a non-finite token) stays NaN: an unknown edge is not a missing edge.
FINSTA_HD float EdgeWeight(float s, float tau, bool self_loop) {
  return self_loop ? 1.f : (s >= tau || s != s ? s : 0.f);
}

}  // namespace core
}  // namespace finsta
