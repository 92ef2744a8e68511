// EdgeGraphAttention arithmetic shared by the CPU kernel, the CUDA kernel and its host twin
// (custom_ops/tests/cuda_twin.cc). No ORT or CUDA headers: plain functions, host and device.
#pragma once

#include "kernel_core.h"

namespace finsta {
namespace core {

constexpr float kEdgeAttentionEps = 1e-6f;  // added to the weight sum: h_i = sum w v / (sum w + eps)

// w_ij = exp(clip(logit, -clamp, clamp)) on an edge, else 0. The clip bounds the weights, so the
// kernels need no running maximum; the self-loop keeps sum_j w_ij >= exp(-clamp) > 0.
FINSTA_HD float EdgeAttentionWeight(float logit, float clamp, bool edge) {
  if (!edge) return 0.f;
  const float c = logit < -clamp ? -clamp : (logit > clamp ? clamp : logit);
  return expf(c);
}

FINSTA_HD float EdgeAttentionNorm(float weight_sum) { return 1.f / (weight_sum + kEdgeAttentionEps); }

}  // namespace core
}  // namespace finsta
