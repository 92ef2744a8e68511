// GaussianDiffGraphAttention arithmetic shared by the CPU kernel, the CUDA kernel and its host
// twin (custom_ops/tests/cuda_twin.cc). No ORT or CUDA headers: plain functions, host and device.
#pragma once

#include <cfloat>

#include "kernel_core.h"

namespace finsta {
namespace core {

// 1 / sigma, kept finite for sigma below 1 / FLT_MAX (denormals) so that the self-loop's zero
// distance gives 0 * (1 / sigma) = 0 rather than 0 * inf = NaN. sigma^2 is never formed: it
// underflows for sigma below about 1e-19.
FINSTA_HD float InvSigma(float sigma) {
  const float inv = 1.f / sigma;
  return inv < FLT_MAX ? inv : FLT_MAX;
}

// log g_ij = -sum_c ((pos_ic - pos_jc) / sigma_hc)^2 / 2, computed directly: large distances give
// -inf (a zero weight), never NaN. pi, pj: the nodes' (x, y, t); inv_sigma: head h's 1 / sigma.
FINSTA_HD float LogGaussian(const float* pi, const float* pj, const float* inv_sigma) {
  const float zx = (pi[0] - pj[0]) * inv_sigma[0];
  const float zy = (pi[1] - pj[1]) * inv_sigma[1];
  const float zt = (pi[2] - pj[2]) * inv_sigma[2];
  return -0.5f * (zx * zx + zy * zy + zt * zt);
}

}  // namespace core
}  // namespace finsta
