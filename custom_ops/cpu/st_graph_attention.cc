// CPU STGraphAttention. Work is split into tasks (batch b, query frame t, block of query rows),
// run on ORT's intra-op thread pool. A task visits only key frames [t - r, t + r]: it builds the
// edge weights A for its rows once ([rows, keys], shared by all heads), then per head computes
// logits, a masked softmax and the weighted sum of values. Nothing of size [B, H, L, L] exists.
#include "../common/op_table.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "../common/st_graph_attention_core.h"
#include "dense_math.h"

namespace finsta {
namespace cpu {
namespace {

constexpr int64_t kRowBlock = 64;

struct Job {
  const float *xn, *q, *k, *v;  // xn [B, L, D]: x / max(|x|, 1e-12), NaN rows where x is not finite
  float* out;
  STGraphAttentionDims dm;
  int64_t row_blocks;  // per frame
  std::atomic<bool> failed{false};
};

void RunTask(Job& job, int64_t task) {
  const STGraphAttentionDims& dm = job.dm;
  const int64_t b = task / (dm.T * job.row_blocks);
  const int64_t t = (task / job.row_blocks) % dm.T;
  const int64_t rb = task % job.row_blocks;
  const int64_t i0 = t * dm.P + rb * kRowBlock;
  const int64_t m = std::min(kRowBlock, dm.P - rb * kRowBlock);
  const int64_t t0 = std::max<int64_t>(0, t - dm.r), t1 = std::min<int64_t>(dm.T - 1, t + dm.r);
  const int64_t j0 = t0 * dm.P, nk = (t1 - t0 + 1) * dm.P;
  const int64_t kp = NumPanels(nk), nkp = kp * kPanel;
  const int64_t dp = NumPanels(dm.d), dpad = dp * kPanel;

  std::vector<float> packed(static_cast<size_t>(std::max({dm.D * nkp, dm.d * nkp, nkp * dpad, int64_t{1}})));
  std::vector<float> a(static_cast<size_t>(m * nkp)), logits(static_cast<size_t>(m * nkp));
  std::vector<float> ctx(static_cast<size_t>(m * dpad));

  // Edge weights for rows i0..i0+m against keys j0..j0+nk; padded key columns stay masked (0).
  const float* xb = job.xn + b * dm.L * dm.D;
  PackTransposed(xb + j0 * dm.D, nk, dm.D, dm.D, packed.data());
  GemmPacked(m, kp, dm.D, xb + i0 * dm.D, dm.D, packed.data(), a.data(), nkp);
  for (int64_t ii = 0; ii < m; ++ii) {
    float* row = a.data() + ii * nkp;
    const int64_t i = i0 + ii;
    for (int64_t jj = 0; jj < nk; ++jj) row[jj] = core::EdgeWeight(row[jj], dm.tau, false);
    row[i - j0] = 1.f;  // the self-loop is always kept
    std::fill(row + nk, row + nkp, 0.f);
  }

  for (int64_t h = 0; h < dm.H; ++h) {
    const int64_t head = (b * dm.H + h) * dm.L;
    PackTransposed(job.k + (head + j0) * dm.d, nk, dm.d, dm.d, packed.data());
    GemmPacked(m, kp, dm.d, job.q + (head + i0) * dm.d, dm.d, packed.data(), logits.data(), nkp);
    for (int64_t ii = 0; ii < m; ++ii) {
      float* lr = logits.data() + ii * nkp;
      const float* ar = a.data() + ii * nkp;
      for (int64_t jj = 0; jj < nkp; ++jj) lr[jj] = dm.scale * lr[jj] * ar[jj];
      MaskedSoftmaxRow(lr, ar, nkp);
    }
    PackRows(job.v + (head + j0) * dm.d, nk, nkp, dm.d, dm.d, packed.data());
    GemmPacked(m, dp, nkp, logits.data(), nkp, packed.data(), ctx.data(), dpad);
    float* o = job.out + (head + i0) * dm.d;
    for (int64_t ii = 0; ii < m; ++ii) std::copy(ctx.data() + ii * dpad, ctx.data() + ii * dpad + dm.d, o + ii * dm.d);
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

OrtStatusPtr Compute(Ep, const STGraphAttentionAttrs& attrs, OrtKernelContext* context) {
  Ort::KernelContext ctx(context);
  if (ctx.GetInputCount() != 4)
    return MakeError(kSTGraphAttention, "expects 4 inputs (x, q, k, v), got " + std::to_string(ctx.GetInputCount()));
  const InputInfo xi = ReadInput(ctx, 0, "x"), qi = ReadInput(ctx, 1, "q"), ki = ReadInput(ctx, 2, "k"),
                  vi = ReadInput(ctx, 3, "v");
  STGraphAttentionDims dm;
  if (OrtStatusPtr s = ValidateSTGraphAttention(attrs, xi, qi, ki, vi, &dm)) return s;

  Ort::UnownedValue out_val = ctx.GetOutput(0, qi.shape);
  float* out = out_val.GetTensorMutableData<float>();
  if (dm.B * dm.H * dm.L * dm.d == 0) return nullptr;  // empty output: nothing to compute

  const float* x = ctx.GetInput(0).GetTensorData<float>();
  std::vector<float> xn(static_cast<size_t>(dm.B * dm.L * dm.D));
  for (int64_t i = 0; i < dm.B * dm.L; ++i) {
    const float* row = x + i * dm.D;
    float mx = 0.f, ss = 0.f;
    for (int64_t c = 0; c < dm.D; ++c) mx = core::AbsMaxStep(mx, row[c]);
    if (mx > 0.f && mx <= 3.40282347e38f)
      for (int64_t c = 0; c < dm.D; ++c) ss += (row[c] / mx) * (row[c] / mx);
    const core::NormScale ns = core::RowNormScale(mx, ss);
    for (int64_t c = 0; c < dm.D; ++c) xn[i * dm.D + c] = row[c] / ns.div * ns.mul;
  }

  Job job;
  job.xn = xn.data();
  job.q = ctx.GetInput(1).GetTensorData<float>();
  job.k = ctx.GetInput(2).GetTensorData<float>();
  job.v = ctx.GetInput(3).GetTensorData<float>();
  job.out = out;
  job.dm = dm;
  job.row_blocks = (dm.P + kRowBlock - 1) / kRowBlock;
  const size_t tasks = static_cast<size_t>(dm.B * dm.T * job.row_blocks);
  ctx.ParallelFor(&TaskEntry, tasks, 0, &job);
  if (job.failed) return MakeError(kSTGraphAttention, "out of memory for scratch buffers", ORT_FAIL);
  return nullptr;
}

}  // namespace cpu
}  // namespace finsta
