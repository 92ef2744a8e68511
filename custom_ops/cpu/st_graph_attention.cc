// CPU STGraphAttention as blocked small GEMMs on ORT's intra-op thread pool, in two passes.
// Pass 1 (a task per (batch, frame) and per (batch, head)) normalises x and packs the GEMMs' right
// operands once: xn^T and k^T into 16-key panels over the whole clip, v into 16-channel panels.
// Pass 2 (a task per (batch, query frame, block of query rows)) visits only key frames [t - r, t + r]:
// the keys of that window are a run of consecutive panels (widened to panel bounds; the extra columns
// are masked), so the edge weights A ([rows, keys], shared by all heads), the logits q k^T and the
// context a v are each one GEMM on the packed panels, with a masked softmax between the last two.
// Nothing of size [B, H, L, L] exists.
#include "../common/op_table.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <vector>

#include "../common/st_graph_attention_core.h"
#include "dense_math.h"

namespace finsta {
namespace cpu {
namespace {

constexpr int64_t kRowBlock = 66;  // query rows per task, a multiple of the GEMM's 6-row tile

struct Job {
  const float *x, *q, *k, *v;
  float* out;
  STGraphAttentionDims dm;
  int64_t key_panels;  // NumPanels(L)
  int64_t d_panels;    // NumPanels(d)
  int64_t row_blocks;  // per frame
  int64_t row_block;   // rows per block (the last block of a frame may have fewer)
  // Pass 1 outputs. xn [B, L, D]: x / max(|x|, 1e-12), NaN rows where x is not finite;
  // xp [B][key_panels][D][16] and kp [B, H][key_panels][d][16]: xn^T and k^T, zero past L;
  // vp [B, H][d_panels][L][16]: v, zero past d.
  std::unique_ptr<float[]> xn, xp, kp, vp;
  std::atomic<bool> failed{false};
};

// Pass 1, task b * T + t: normalises the rows of frame t into xn and its panels into xp (the last
// frame also zeroes the panel lanes past L).
void NormaliseFrame(Job& job, int64_t b, int64_t t) {
  const STGraphAttentionDims& dm = job.dm;
  const int64_t j0 = t * dm.P, j1 = t == dm.T - 1 ? job.key_panels * kPanel : j0 + dm.P;
  const float* x = job.x + b * dm.L * dm.D;
  float* xn = job.xn.get() + b * dm.L * dm.D;
  for (int64_t i = j0; i < std::min(j1, dm.L); ++i) NormaliseRow(x + i * dm.D, dm.D, xn + i * dm.D);
  PackTransposedRange(xn, dm.L, dm.D, dm.D, j0, j1, job.xp.get() + b * job.key_panels * kPanel * dm.D);
}

// Pass 1, task for head bh = b * H + h: k^T into kp, v into vp.
void PackHead(Job& job, int64_t bh) {
  const STGraphAttentionDims& dm = job.dm;
  const int64_t d = dm.d;
  PackTransposed(job.k + bh * dm.L * d, dm.L, d, d, job.kp.get() + bh * job.key_panels * kPanel * d);
  PackRows(job.v + bh * dm.L * d, dm.L, dm.L, d, d, job.vp.get() + bh * job.d_panels * kPanel * dm.L);
}

void PackTask(void* data, size_t task) {
  Job& job = *static_cast<Job*>(data);
  const int64_t frames = job.dm.B * job.dm.T, n = static_cast<int64_t>(task);
  if (n < frames)
    NormaliseFrame(job, n / job.dm.T, n % job.dm.T);
  else
    PackHead(job, n - frames);
}

// Pass 2: rows [i0, i0 + m) of frame t of batch b.
void AttendTask(Job& job, int64_t task) {
  const STGraphAttentionDims& dm = job.dm;
  const int64_t b = task / (dm.T * job.row_blocks);
  const int64_t t = (task / job.row_blocks) % dm.T;
  const int64_t rb = task % job.row_blocks;
  const int64_t i0 = t * dm.P + rb * job.row_block;
  const int64_t m = std::min(job.row_block, dm.P - rb * job.row_block);
  const int64_t t0 = std::max<int64_t>(0, t - dm.r), t1 = std::min<int64_t>(dm.T - 1, t + dm.r);
  // Keys [j0, j1) of the window; columns c of A and the logits are keys jp + c over whole panels.
  const int64_t j0 = t0 * dm.P, j1 = (t1 + 1) * dm.P, nk = j1 - j0;
  const int64_t p0 = j0 / kPanel, jp = p0 * kPanel;
  const int64_t np = NumPanels(j1 - jp), ncols = np * kPanel;
  const int64_t dpad = job.d_panels * kPanel;

  std::vector<float> a(static_cast<size_t>(m * ncols)), logits(static_cast<size_t>(m * ncols));
  std::vector<float> ctx(static_cast<size_t>(m * dpad)), inv_sum(static_cast<size_t>(m));

  // Edge weights; the columns outside the window (panel widening, keys past L) are masked (0).
  GemmPanels(m, np, dm.D, job.xn.get() + (b * dm.L + i0) * dm.D, dm.D,
             job.xp.get() + (b * job.key_panels + p0) * kPanel * dm.D, kPanel * dm.D, a.data(), ncols);
  for (int64_t ii = 0; ii < m; ++ii) {
    float* row = a.data() + ii * ncols;
    std::fill(row, row + (j0 - jp), 0.f);
    for (int64_t c = j0 - jp; c < j1 - jp; ++c) row[c] = core::EdgeWeight(row[c], dm.tau, false);
    std::fill(row + (j1 - jp), row + ncols, 0.f);
    row[i0 + ii - jp] = 1.f;  // the self-loop is always kept
  }

  for (int64_t h = 0; h < dm.H; ++h) {
    const int64_t bh = b * dm.H + h, head = bh * dm.L;
    GemmPanels(m, np, dm.d, job.q + (head + i0) * dm.d, dm.d, job.kp.get() + (bh * job.key_panels + p0) * kPanel * dm.d,
               kPanel * dm.d, logits.data(), ncols);
    for (int64_t ii = 0; ii < m; ++ii)
      inv_sum[ii] = 1.f / WeightedMaskedExpRow(logits.data() + ii * ncols, a.data() + ii * ncols, dm.scale, ncols);
    // Context over exactly the window's keys (a masked key outside it must not bring its v in).
    GemmPanels(m, job.d_panels, nk, logits.data() + (j0 - jp), ncols,
               job.vp.get() + bh * job.d_panels * kPanel * dm.L + j0 * kPanel, kPanel * dm.L, ctx.data(), dpad);
    float* o = job.out + (head + i0) * dm.d;
    for (int64_t ii = 0; ii < m; ++ii)
      for (int64_t c = 0; c < dm.d; ++c) o[ii * dm.d + c] = ctx[ii * dpad + c] * inv_sum[ii];
  }
}

void AttendEntry(void* data, size_t task) {
  Job& job = *static_cast<Job*>(data);
  try {
    AttendTask(job, static_cast<int64_t>(task));
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

  Job job;
  job.x = ctx.GetInput(0).GetTensorData<float>();
  job.q = ctx.GetInput(1).GetTensorData<float>();
  job.k = ctx.GetInput(2).GetTensorData<float>();
  job.v = ctx.GetInput(3).GetTensorData<float>();
  job.out = out;
  job.dm = dm;
  job.key_panels = NumPanels(dm.L);
  job.d_panels = NumPanels(dm.d);
  // Rows per block: P split into blocks of at most kRowBlock rows, as even as 6-row tiles allow.
  job.row_blocks = (dm.P + kRowBlock - 1) / kRowBlock;
  job.row_block = std::min(dm.P, ((dm.P + job.row_blocks - 1) / job.row_blocks + 5) / 6 * 6);
  job.row_blocks = (dm.P + job.row_block - 1) / job.row_block;
  // The packed copies pad L and d to whole panels (at most 15 more of each): check those products too.
  const int64_t lpad = job.key_panels * kPanel, dpad = job.d_panels * kPanel;
  if (!ProductFits({dm.B, lpad, dm.D}) || !ProductFits({dm.B, dm.H, lpad, dpad}))
    return TooLargeError(kSTGraphAttention, "the packed copies of x, k and v");
  job.xn.reset(new float[static_cast<size_t>(dm.B * dm.L * dm.D)]);
  job.xp.reset(new float[static_cast<size_t>(dm.B * lpad * dm.D)]);
  job.kp.reset(new float[static_cast<size_t>(dm.B * dm.H * lpad * dm.d)]);
  job.vp.reset(new float[static_cast<size_t>(dm.B * dm.H * dpad * dm.L)]);

  ctx.ParallelFor(&PackTask, static_cast<size_t>(dm.B * dm.T + dm.B * dm.H), 0, &job);
  ctx.ParallelFor(&AttendEntry, static_cast<size_t>(dm.B * dm.T * job.row_blocks), 0, &job);
  if (job.failed) return MakeError(kSTGraphAttention, "out of memory for scratch buffers", ORT_FAIL);
  return nullptr;
}

}  // namespace cpu
}  // namespace finsta
