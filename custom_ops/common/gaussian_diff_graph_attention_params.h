// GaussianDiffGraphAttention: input validation, shared by the CPU and CUDA kernels.
// Semantics (docs/ops.md):
//   log g_ij = -sum_c (pos_ic - pos_jc)^2 / (2 sigma_hc^2)        (computed directly, never log(exp))
//   alpha_ij = softmax_j over adj(q_i.k_j d^-1/2 + log g_ij);  out_i = [sum alpha v_j, sum alpha (v_j - v_i)]
// Non-finite q, k, v, pos propagate through the edges (a -inf log g is a zero weight, as defined);
// sigma is a parameter and must be finite and > 0. On the CPU a NaN v_j also reaches rows i
// without the edge (i, j) (0 * NaN in the dense product), as in the float64 reference.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "gaussian_diff_graph_attention_core.h"
#include "op_utils.h"

namespace finsta {

constexpr const char* kGaussianDiffGraphAttention = "GaussianDiffGraphAttention";

// The op takes no attributes (a node that carries any is refused when its model is loaded: model_check.h).
struct GaussianDiffGraphAttentionAttrs {};

// The op's entry in the op table (common/op_table.h).
struct GaussianDiffGraphAttentionDef {
  static constexpr const char* kName = kGaussianDiffGraphAttention;
  static constexpr size_t kInputs = 6;   // q, k, v, pos, adj, sigma
  static constexpr size_t kOutputs = 1;  // out
  static constexpr int kHostInput = 5;   // sigma: the CUDA kernel checks its values on the host first
  // No attributes: any name on a node is refused (model_check.h).
  static constexpr std::array<const char*, 0> kAttrNames = {};
  using Attrs = GaussianDiffGraphAttentionAttrs;
  static OrtStatusPtr ReadAttrs(const OrtKernelInfo*, Attrs*) { return nullptr; }
};

// Problem sizes after validation. The output is [B, H, N, 2d].
struct GaussianDiffGraphAttentionDims {
  int64_t B = 0, H = 0, N = 0, d = 0;
  float scale = 1.f;  // d^-1/2
  bool Empty() const { return B * H * N * d == 0; }
};

// Checks ranks, dtypes and shapes of q, k, v [B, H, N, d], pos [B, N, 3], adj [B, N, N] and
// sigma [H, 3] (metadata only; sigma's values and the self-loops are checked where the data lives).
inline OrtStatusPtr ValidateGaussianDiffGraphAttention(const InputInfo& q, const InputInfo& k, const InputInfo& v,
                                                       const InputInfo& pos, const InputInfo& adj,
                                                       const InputInfo& sigma, GaussianDiffGraphAttentionDims* dims) {
  const std::string op = kGaussianDiffGraphAttention;
  const auto f32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  if (OrtStatusPtr s = CheckQKV(op, q, k, v, "[B, H, N, d]")) return s;
  const int64_t B = q.shape[0], H = q.shape[1], N = q.shape[2], d = q.shape[3];
  if (OrtStatusPtr s = CheckRankAndType(op, pos, 3, "[B, N, 3]", f32)) return s;
  if (pos.shape != std::vector<int64_t>{B, N, 3})
    return MakeError(op, "input 'pos' must have shape [B, N, 3] = " + ShapeToString({B, N, 3}) +
                             " (x, y, t of each node), got " + ShapeToString(pos.shape));
  if (OrtStatusPtr s = CheckAdjacency(op, adj, B, N)) return s;
  if (OrtStatusPtr s = CheckRankAndType(op, sigma, 2, "[H, 3]", f32)) return s;
  if (sigma.shape != std::vector<int64_t>{H, 3})
    return MakeError(
        op, "input 'sigma' must have shape [H, 3] = " + ShapeToString({H, 3}) + ", got " + ShapeToString(sigma.shape));
  // Index arithmetic uses int64; the [B, H, N, N] logits of the portable form and the output
  // [B, H, N, 2d] bound every product of sizes.
  if (!ProductFits({B, H, N, N})) return TooLargeError(op, "the logits [B, H, N, N]");
  if (!ProductFits({B, H, N, 2, d})) return TooLargeError(op, "'out' [B, H, N, 2d]");
  *dims = GaussianDiffGraphAttentionDims{B, H, N, d, d > 0 ? 1.f / std::sqrt(static_cast<float>(d)) : 1.f};
  return nullptr;
}

// Checks sigma [H, 3] on the host (finite, > 0) and writes 1 / sigma for the kernels.
inline OrtStatusPtr ReadSigma(const float* sigma, int64_t H, float* inv_sigma) {
  for (int64_t i = 0; i < H * 3; ++i) {
    if (!(std::isfinite(sigma[i]) && sigma[i] > 0.f))
      return MakeError(kGaussianDiffGraphAttention, "input 'sigma' must be finite and > 0, got sigma[" +
                                                        std::to_string(i / 3) + ", " + std::to_string(i % 3) +
                                                        "] = " + FloatToString(sigma[i]));
    inv_sigma[i] = core::InvSigma(sigma[i]);
  }
  return nullptr;
}

}  // namespace finsta
