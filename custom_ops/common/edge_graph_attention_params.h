// EdgeGraphAttention: attributes and input validation, shared by the CPU and CUDA kernels.
// Semantics (docs/ops.md):
//   s_ij = (q_i * k_j) d^-1/2 * e_ij;  e_out = s
//   w_ij = adj_ij exp(clip(sum_d s_ij, -clamp, clamp));  h_i = sum_j w_ij v_j / (sum_j w_ij + 1e-6)
// Any finite clamp > 0 is exact: the kernels never form exp(c) itself (core::EdgeAttentionNorm).
// Non-finite inputs propagate through the edges (an infinite logit clips to +-clamp, as defined).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>

#include "op_utils.h"

namespace finsta {

constexpr const char* kEdgeGraphAttention = "EdgeGraphAttention";

struct EdgeGraphAttentionAttrs {
  float clamp = 5.f;
};

// Problem sizes after validation.
struct EdgeGraphAttentionDims {
  int64_t B = 0, H = 0, N = 0, d = 0;
  float clamp = 5.f, scale = 1.f;  // scale = d^-1/2
  bool Empty() const { return B * H * N * d == 0; }
};

// Reads and checks the attributes once, when the kernel is created.
inline OrtStatusPtr ReadEdgeGraphAttentionAttrs(const OrtKernelInfo* info, EdgeGraphAttentionAttrs* a) {
  a->clamp = 5.f;
  if (OrtStatusPtr s = ReadAttr(kEdgeGraphAttention, info, "clamp", /*required=*/false, &a->clamp)) return s;
  if (!(std::isfinite(a->clamp) && a->clamp > 0.f))
    return MakeError(kEdgeGraphAttention, "attribute 'clamp' must be finite and > 0, got " + FloatToString(a->clamp));
  return nullptr;
}

// The op's entry in the op table (common/op_table.h).
struct EdgeGraphAttentionDef {
  static constexpr const char* kName = kEdgeGraphAttention;
  static constexpr size_t kInputs = 5;   // q, k, v, e, adj
  static constexpr size_t kOutputs = 2;  // h, e_out
  static constexpr int kHostInput = -1;  // none
  // Every attribute ReadEdgeGraphAttentionAttrs reads; any other name on a node is refused (model_check.h).
  static constexpr std::array<const char*, 1> kAttrNames = {"clamp"};
  using Attrs = EdgeGraphAttentionAttrs;
  static OrtStatusPtr ReadAttrs(const OrtKernelInfo* info, Attrs* a) { return ReadEdgeGraphAttentionAttrs(info, a); }
};

// Checks ranks, dtypes and shapes of q, k, v [B, H, N, d], e [B, H, N, N, d] and adj [B, N, N]
// (metadata only; the self-loops are checked where the data lives).
inline OrtStatusPtr ValidateEdgeGraphAttention(const EdgeGraphAttentionAttrs& a, const InputInfo& q, const InputInfo& k,
                                               const InputInfo& v, const InputInfo& e, const InputInfo& adj,
                                               EdgeGraphAttentionDims* dims) {
  const std::string op = kEdgeGraphAttention;
  const auto f32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  if (OrtStatusPtr s = CheckQKV(op, q, k, v, "[B, H, N, d]")) return s;
  const int64_t B = q.shape[0], H = q.shape[1], N = q.shape[2], d = q.shape[3];
  if (OrtStatusPtr s = CheckRankAndType(op, e, 5, "[B, H, N, N, d]", f32)) return s;
  if (e.shape != std::vector<int64_t>{B, H, N, N, d})
    return MakeError(op, "input 'e' must have shape [B, H, N, N, d] = " + ShapeToString({B, H, N, N, d}) +
                             " (from 'q'), got " + ShapeToString(e.shape));
  if (OrtStatusPtr s = CheckAdjacency(op, adj, B, N)) return s;
  // Index arithmetic uses int64; the largest tensor, e, bounds every product of sizes.
  if (!ProductFits({B, H, N, N, d})) return TooLargeError(op, "'e' [B, H, N, N, d]");
  *dims = EdgeGraphAttentionDims{B, H, N, d, a.clamp, d > 0 ? 1.f / std::sqrt(static_cast<float>(d)) : 1.f};
  return nullptr;
}

}  // namespace finsta
