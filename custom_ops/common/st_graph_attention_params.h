// STGraphAttention: attributes and input validation, shared by the CPU and CUDA kernels.
// Semantics (docs/ops.md):
//   xn = x / max(|x|, 1e-12);  S = xn xn^T;  band(i, j) = |i/P - j/P| <= r
//   A = where(S >= tau, S, 0) * band;  A(i, i) = 1
//   logits = scale * q k^T * A;  logits[A == 0] = -inf;  out = softmax(logits) v
// frame_radius >= T - 1 is taken as T - 1 (the same band). Non-finite values propagate, never
// refused and never swallowed: a token whose x holds NaN or inf has unknown similarities, so its
// edges A(i, j) and A(j, i), j != i in the band, are NaN (not dropped), and so is the output of
// every token whose window holds it (core::RowNormScale, core::EdgeWeight).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>

#include "op_utils.h"
#include "st_graph_attention_core.h"

namespace finsta {

constexpr const char* kSTGraphAttention = "STGraphAttention";

struct STGraphAttentionAttrs {
  int64_t tokens_per_frame = 0;  // P
  int64_t frame_radius = 1;      // r
  float sim_threshold = 0.f;     // tau
  float scale = 0.f;             // used only when has_scale
  bool has_scale = false;        // absent: d^-1/2
};

// Problem sizes after validation. T = L / P.
struct STGraphAttentionDims {
  int64_t B = 0, L = 0, D = 0, H = 0, d = 0, P = 0, T = 0, r = 0;
  float tau = 0.f, scale = 0.f;
  // Key frames [t - r, t + r] clipped to [0, T): the most key tokens any query sees.
  int64_t MaxKeys() const { return (2 * r + 1 < T ? 2 * r + 1 : T) * P; }
};

// Reads and checks the attributes once, when the kernel is created. Every attribute is range-checked
// here and again against the input shapes (ValidateSTGraphAttention) before any arithmetic uses it.
inline OrtStatusPtr ReadSTGraphAttentionAttrs(const OrtKernelInfo* info, STGraphAttentionAttrs* a) {
  const std::string op = kSTGraphAttention;
  if (OrtStatusPtr s = ReadAttr(op, info, "tokens_per_frame", /*required=*/true, &a->tokens_per_frame)) return s;
  if (a->tokens_per_frame <= 0)
    return MakeError(op, "attribute 'tokens_per_frame' must be > 0, got " + std::to_string(a->tokens_per_frame));
  if (OrtStatusPtr s = ReadAttr(op, info, "frame_radius", /*required=*/false, &a->frame_radius)) return s;
  if (a->frame_radius < 0)
    return MakeError(op, "attribute 'frame_radius' must be >= 0, got " + std::to_string(a->frame_radius));
  if (OrtStatusPtr s = ReadAttr(op, info, "sim_threshold", /*required=*/true, &a->sim_threshold)) return s;
  if (std::isnan(a->sim_threshold)) return MakeError(op, "attribute 'sim_threshold' is NaN");
  if (OrtStatusPtr s = ReadAttr(op, info, "scale", /*required=*/false, &a->scale, &a->has_scale)) return s;
  if (a->has_scale && !(std::isfinite(a->scale) && a->scale > 0.f))
    return MakeError(op, "attribute 'scale' must be finite and > 0, got " + std::to_string(a->scale));
  return nullptr;
}

// The op's entry in the op table (common/op_table.h).
struct STGraphAttentionDef {
  static constexpr const char* kName = kSTGraphAttention;
  static constexpr size_t kInputs = 4;   // x, q, k, v
  static constexpr size_t kOutputs = 1;  // out
  static constexpr int kHostInput = -1;  // none: the CUDA kernels read every input on the device
  // Every attribute ReadSTGraphAttentionAttrs reads; any other name on a node is refused (model_check.h).
  static constexpr std::array<const char*, 4> kAttrNames = {"tokens_per_frame", "frame_radius", "sim_threshold",
                                                            "scale"};
  using Attrs = STGraphAttentionAttrs;
  static OrtStatusPtr ReadAttrs(const OrtKernelInfo* info, Attrs* a) { return ReadSTGraphAttentionAttrs(info, a); }
};

// Checks ranks, dtypes and every dimension relation between x [B, L, D] and q, k, v [B, H, L, d].
inline OrtStatusPtr ValidateSTGraphAttention(const STGraphAttentionAttrs& a, const InputInfo& x, const InputInfo& q,
                                             const InputInfo& k, const InputInfo& v, STGraphAttentionDims* dims) {
  const std::string op = kSTGraphAttention;
  const auto f32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  if (OrtStatusPtr s = CheckRankAndType(op, x, 3, "[B, L, D]", f32)) return s;
  if (OrtStatusPtr s = CheckQKV(op, q, k, v, "[B, H, L, d]")) return s;
  if (q.shape[0] != x.shape[0])
    return MakeError(
        op, "batch mismatch: 'x' has B=" + std::to_string(x.shape[0]) + " but 'q' has B=" + std::to_string(q.shape[0]));
  if (q.shape[2] != x.shape[1])
    return MakeError(op, "token-count mismatch: 'x' has L=" + std::to_string(x.shape[1]) +
                             " but 'q' has L=" + std::to_string(q.shape[2]));
  const int64_t L = x.shape[1];
  if (L % a.tokens_per_frame != 0)
    return MakeError(op, "L=" + std::to_string(L) +
                             " tokens is not a multiple of tokens_per_frame=" + std::to_string(a.tokens_per_frame));
  dims->B = x.shape[0];
  dims->L = L;
  dims->D = x.shape[2];
  dims->H = q.shape[1];
  dims->d = q.shape[3];
  dims->P = a.tokens_per_frame;
  dims->T = L / a.tokens_per_frame;
  dims->r = core::ClampRadius(a.frame_radius, dims->T);
  dims->tau = a.sim_threshold;
  dims->scale = a.has_scale ? a.scale : (dims->d > 0 ? 1.f / std::sqrt(static_cast<float>(dims->d)) : 1.f);
  // Every product of sizes the kernels form (x, q/k/v, the CUDA edge buffer [B, L, W]) stays far
  // inside int64.
  if (!ProductFits({dims->B, L, dims->D})) return TooLargeError(op, "'x' [B, L, D]");
  if (!ProductFits({dims->B, dims->H, L, dims->d})) return TooLargeError(op, "'q' [B, H, L, d]");
  if (!ProductFits({dims->B, L, dims->MaxKeys()})) return TooLargeError(op, "the edge weights [B, L, keys]");
  return nullptr;
}

}  // namespace finsta
