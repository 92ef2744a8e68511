// CPU EdgeGraphAttention. Work is split into tasks (batch b, head h, block of query rows), run on
// ORT's intra-op thread pool. Per query row the scores s_ij are computed, written to e_out and
// clipped in one pass over e (the op reads e and writes e_out once: it is bound by that traffic);
// the weights exp(c_ij - max_j c_ij) and the values are summed in a second pass over j
// (core::EdgeAttentionNorm turns those sums into h without forming exp(c_ij), which overflows).
#include "../common/op_table.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "../common/edge_graph_attention_core.h"
#include "dense_math.h"

namespace finsta {
namespace cpu {
namespace {

constexpr int64_t kRowBlock = 16;

struct Job {
  const float *q, *k, *v, *e;
  const uint8_t* adj;
  float *h, *e_out;
  EdgeGraphAttentionDims dm;
  int64_t row_blocks;  // per (b, h)
  std::atomic<bool> failed{false};
};

void RunTask(Job& job, int64_t task) {
  const EdgeGraphAttentionDims& dm = job.dm;
  const int64_t N = dm.N, d = dm.d;
  const int64_t b = task / (dm.H * job.row_blocks);
  const int64_t head = (task / job.row_blocks) * N;  // (b * H + h) * N
  const int64_t i0 = (task % job.row_blocks) * kRowBlock, i1 = std::min(N, i0 + kRowBlock);
  std::vector<float> qs(static_cast<size_t>(d)), w(static_cast<size_t>(N)), acc(static_cast<size_t>(d));
  for (int64_t i = i0; i < i1; ++i) {
    const float* qi = job.q + (head + i) * d;
    for (int64_t c = 0; c < d; ++c) qs[c] = qi[c] * dm.scale;
    const float* erow = job.e + (head + i) * N * d;
    float* orow = job.e_out + (head + i) * N * d;
    float mx = -INFINITY;  // max_j c_ij over the edges; NaN sticks
    for (int64_t j = 0; j < N; ++j) {
      const float logit = TripleProductSum(qs.data(), job.k + (head + j) * d, erow + j * d, orow + j * d, d);
      if (!core::HasEdge(job.adj, N, b, i, j)) continue;
      w[j] = core::EdgeAttentionLogit(logit, dm.clamp);
      mx = (w[j] > mx || w[j] != w[j]) ? w[j] : mx;
    }
    float wsum = 0.f;
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int64_t j = 0; j < N; ++j) {
      if (!core::HasEdge(job.adj, N, b, i, j)) continue;  // an edge's v counts even if its weight underflows
      const float wj = std::exp(w[j] - mx);
      wsum += wj;
      Axpy(wj, job.v + (head + j) * d, acc.data(), d);
    }
    const core::EdgeAttentionScale norm = core::EdgeAttentionNorm(wsum, mx);
    float* hi = job.h + (head + i) * d;
    for (int64_t c = 0; c < d; ++c) hi[c] = acc[c] * norm.a * norm.b;
  }
}

void TaskEntry(void* data, size_t task) {
  Job& job = *static_cast<Job*>(data);
  try {
    RunTask(job, static_cast<int64_t>(task));
  } catch (...) {  // bad_alloc: reported after the loop, never thrown through ORT's pool
    job.failed = true;
  }
}

}  // namespace

OrtStatusPtr Compute(Ep, const EdgeGraphAttentionAttrs& attrs, OrtKernelContext* context) {
  Ort::KernelContext ctx(context);
  if (ctx.GetInputCount() != 5)
    return MakeError(kEdgeGraphAttention,
                     "expects 5 inputs (q, k, v, e, adj), got " + std::to_string(ctx.GetInputCount()));
  const InputInfo qi = ReadInput(ctx, 0, "q"), ki = ReadInput(ctx, 1, "k"), vi = ReadInput(ctx, 2, "v"),
                  ei = ReadInput(ctx, 3, "e"), ai = ReadInput(ctx, 4, "adj");
  EdgeGraphAttentionDims dm;
  if (OrtStatusPtr s = ValidateEdgeGraphAttention(attrs, qi, ki, vi, ei, ai, &dm)) return s;
  const auto* adj = static_cast<const uint8_t*>(ctx.GetInput(4).GetTensorRawData());
  if (OrtStatusPtr s = CheckSelfLoops(kEdgeGraphAttention, "adj", adj, dm.B, dm.N)) return s;

  float* h = ctx.GetOutput(0, qi.shape).GetTensorMutableData<float>();
  float* e_out = ctx.GetOutput(1, ei.shape).GetTensorMutableData<float>();
  if (dm.Empty()) return nullptr;  // empty outputs: nothing to compute

  Job job;
  job.q = ctx.GetInput(0).GetTensorData<float>();
  job.k = ctx.GetInput(1).GetTensorData<float>();
  job.v = ctx.GetInput(2).GetTensorData<float>();
  job.e = ctx.GetInput(3).GetTensorData<float>();
  job.adj = adj;
  job.h = h;
  job.e_out = e_out;
  job.dm = dm;
  job.row_blocks = (dm.N + kRowBlock - 1) / kRowBlock;
  ctx.ParallelFor(&TaskEntry, static_cast<size_t>(dm.B * dm.H * job.row_blocks), 0, &job);
  if (job.failed) return MakeError(kEdgeGraphAttention, "out of memory for scratch buffers", ORT_FAIL);
  return nullptr;
}

}  // namespace cpu
}  // namespace finsta
