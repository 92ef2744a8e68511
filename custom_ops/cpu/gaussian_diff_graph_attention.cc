// CPU GaussianDiffGraphAttention. Work is split into tasks (batch b, head h, block of query rows),
// run on ORT's intra-op thread pool. A task computes its [rows, N] logits with the packed GEMM,
// adds the Gaussian log-bias from the positions, applies the adjacency as the softmax mask, and
// multiplies by V; the second half of the output is the context minus the node's own value.
// Nothing of size [B, H, N, N] exists.
#include "../common/op_table.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "dense_math.h"

namespace finsta {
namespace cpu {
namespace {

constexpr int64_t kRowBlock = 64;

struct Job {
  const float *q, *k, *v, *pos;
  const uint8_t* adj;
  const float* inv_sigma;  // [H, 3]
  float* out;              // [B, H, N, 2d]
  GaussianDiffGraphAttentionDims dm;
  int64_t row_blocks;  // per (b, h)
  std::atomic<bool> failed{false};
};

void RunTask(Job& job, int64_t task) {
  const GaussianDiffGraphAttentionDims& dm = job.dm;
  const int64_t N = dm.N, d = dm.d;
  const int64_t b = task / (dm.H * job.row_blocks), h = (task / job.row_blocks) % dm.H;
  const int64_t head = (b * dm.H + h) * N;
  const int64_t i0 = (task % job.row_blocks) * kRowBlock, m = std::min(kRowBlock, N - i0);
  const int64_t kp = NumPanels(N), nkp = kp * kPanel;
  const int64_t dp = NumPanels(d), dpad = dp * kPanel;

  std::vector<float> packed(static_cast<size_t>(std::max(d * nkp, nkp * dpad)));
  std::vector<float> logits(static_cast<size_t>(m * nkp)), mask(static_cast<size_t>(nkp), 0.f);
  std::vector<float> ctx(static_cast<size_t>(m * dpad));

  PackTransposed(job.k + head * d, N, d, d, packed.data());
  GemmPacked(m, kp, d, job.q + (head + i0) * d, d, packed.data(), logits.data(), nkp);
  const float* pos = job.pos + b * N * 3;
  const float* inv_sigma = job.inv_sigma + h * 3;
  for (int64_t ii = 0; ii < m; ++ii) {
    const int64_t i = i0 + ii;
    float* row = logits.data() + ii * nkp;
    for (int64_t j = 0; j < N; ++j) {
      row[j] = dm.scale * row[j] + core::LogGaussian(pos + i * 3, pos + j * 3, inv_sigma);
      mask[j] = core::HasEdge(job.adj, N, b, i, j) ? 1.f : 0.f;  // padded columns >= N stay 0
    }
    MaskedSoftmaxRow(row, mask.data(), nkp);  // the self-loop keeps the row's sum >= 1
  }
  PackRows(job.v + head * d, N, nkp, d, d, packed.data());
  GemmPacked(m, dp, nkp, logits.data(), nkp, packed.data(), ctx.data(), dpad);
  for (int64_t ii = 0; ii < m; ++ii) {
    const float* c = ctx.data() + ii * dpad;
    const float* vi = job.v + (head + i0 + ii) * d;
    float* o = job.out + (head + i0 + ii) * 2 * d;
    for (int64_t t = 0; t < d; ++t) {
      o[t] = c[t];
      o[d + t] = c[t] - vi[t];  // sum_j alpha_ij (v_j - v_i): alpha sums to 1
    }
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

OrtStatusPtr Compute(Ep, const GaussianDiffGraphAttentionAttrs&, OrtKernelContext* context) {
  const char* op = kGaussianDiffGraphAttention;
  Ort::KernelContext ctx(context);
  if (ctx.GetInputCount() != 6)
    return MakeError(op, "expects 6 inputs (q, k, v, pos, adj, sigma), got " + std::to_string(ctx.GetInputCount()));
  const InputInfo qi = ReadInput(ctx, 0, "q"), ki = ReadInput(ctx, 1, "k"), vi = ReadInput(ctx, 2, "v"),
                  pi = ReadInput(ctx, 3, "pos"), ai = ReadInput(ctx, 4, "adj"), si = ReadInput(ctx, 5, "sigma");
  GaussianDiffGraphAttentionDims dm;
  if (OrtStatusPtr s = ValidateGaussianDiffGraphAttention(qi, ki, vi, pi, ai, si, &dm)) return s;
  std::vector<float> inv_sigma(static_cast<size_t>(dm.H * 3));
  if (dm.H > 0)
    if (OrtStatusPtr s = ReadSigma(ctx.GetInput(5).GetTensorData<float>(), dm.H, inv_sigma.data())) return s;
  const auto* adj = static_cast<const uint8_t*>(ctx.GetInput(4).GetTensorRawData());
  if (OrtStatusPtr s = CheckSelfLoops(op, "adj", adj, dm.B, dm.N)) return s;

  float* out = ctx.GetOutput(0, {dm.B, dm.H, dm.N, 2 * dm.d}).GetTensorMutableData<float>();
  if (dm.Empty()) return nullptr;  // empty output: nothing to compute

  Job job;
  job.q = ctx.GetInput(0).GetTensorData<float>();
  job.k = ctx.GetInput(1).GetTensorData<float>();
  job.v = ctx.GetInput(2).GetTensorData<float>();
  job.pos = ctx.GetInput(3).GetTensorData<float>();
  job.adj = adj;
  job.inv_sigma = inv_sigma.data();
  job.out = out;
  job.dm = dm;
  job.row_blocks = (dm.N + kRowBlock - 1) / kRowBlock;
  ctx.ParallelFor(&TaskEntry, static_cast<size_t>(dm.B * dm.H * job.row_blocks), 0, &job);
  if (job.failed) return MakeError(op, "out of memory for scratch buffers", ORT_FAIL);
  return nullptr;
}

}  // namespace cpu
}  // namespace finsta
