// EdgeGraphAttention arithmetic shared by the CPU kernel, the CUDA kernel and its host twin
// (custom_ops/tests/cuda_twin.cc). No ORT or CUDA headers: plain functions, host and device.
#pragma once

#include "kernel_core.h"

namespace finsta {
namespace core {

constexpr float kEdgeAttentionEps = 1e-6f;            // h_i = sum w v / (sum w + eps)
constexpr float kEdgeAttentionLogEps = -13.8155106f;  // log(eps)

// The clipped logit c_ij = clip(logit, -clamp, clamp) of an edge; NaN stays NaN, +-inf becomes +-clamp.
FINSTA_HD float EdgeAttentionLogit(float logit, float clamp) {
  return logit < -clamp ? -clamp : (logit > clamp ? clamp : logit);
}

// h_i = sum_j w_ij v_j / (sum_j w_ij + eps) with w_ij = exp(c_ij), from the max-shifted sums the
// kernels accumulate (as a softmax does): m = max_j c_ij, l = sum_j exp(c_ij - m) >= 1 (the
// maximum's own term), acc = sum_j exp(c_ij - m) v_j. exp(c_ij) itself overflows float32 once
// clamp >= 88, so h = acc / (l + eps e^-m); where m < log eps, eps e^-m could overflow in turn and
// h = (acc f) f / (l f^2 + 1) with f = e^((m - log eps) / 2) < 1, the same value. h = (acc * a) * b.
struct EdgeAttentionScale {
  float a, b;
};

FINSTA_HD EdgeAttentionScale EdgeAttentionNorm(float l, float m) {
  if (m >= kEdgeAttentionLogEps) return EdgeAttentionScale{1.f / (l + expf(kEdgeAttentionLogEps - m)), 1.f};
  const float f = expf(0.5f * (m - kEdgeAttentionLogEps));  // NaN m (a NaN input) lands here: NaN h
  return EdgeAttentionScale{f, f / (l * f * f + 1.f)};
}

}  // namespace core
}  // namespace finsta
