// STGraphAttention CUDA kernels.
//  1. NormalizeRows: one warp per token, xn = x / max(|x|, 1e-12) scaled by max |x_c| (never |x|^2).
//  2. EdgeWeights:   one thread per (b, query i, key slot w) of the query's window of key frames
//                    [t - r, t + r]; stores A(i, j) in a banded [B, L, W] buffer, shared by heads.
//  3. Attend:        one warp per (b, h, query i); visits only the keys of its window, skips
//                    A == 0, online softmax, lanes split the head dim. Never [B, H, L, L].
#include "st_graph_attention_kernels.h"

#include <cuda_runtime.h>

#include "../common/st_graph_attention_core.h"
#include "device_utils.cuh"

namespace finsta {
namespace cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

__global__ void NormalizeRows(const float* __restrict__ x, float* __restrict__ xn, int64_t rows, int64_t D) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= rows) return;
  const float* xr = x + row * D;
  float mx = 0.f;
  for (int64_t c = lane; c < D; c += kWarp) mx = core::AbsMaxStep(mx, xr[c]);
  mx = WarpAbsMax(mx);
  float ss = 0.f;
  if (mx > 0.f && mx <= 3.40282347e38f)
    for (int64_t c = lane; c < D; c += kWarp) ss += (xr[c] / mx) * (xr[c] / mx);
  const core::NormScale ns = core::RowNormScale(mx, WarpSum(ss));
  for (int64_t c = lane; c < D; c += kWarp) xn[row * D + c] = xr[c] / ns.div * ns.mul;
}

__global__ void EdgeWeights(const float* __restrict__ xn, float* __restrict__ edge, int64_t B, int64_t L, int64_t D,
                            int64_t P, int64_t T, int64_t r, int64_t W, float tau) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= B * L * W) return;
  const int64_t w = idx % W, i = (idx / W) % L, b = idx / (W * L);
  int64_t count;
  const int64_t j0 = core::KeyRange(i, P, T, r, &count);
  float a = 0.f;
  if (w < count) {
    const int64_t j = j0 + w;
    const float* xi = xn + (b * L + i) * D;
    const float* xj = xn + (b * L + j) * D;
    float s = 0.f;
    for (int64_t c = 0; c < D; ++c) s += xi[c] * xj[c];
    a = core::EdgeWeight(s, tau, i == j);
  }
  edge[idx] = a;
}

__global__ void Attend(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                       const float* __restrict__ edge, float* __restrict__ out, int64_t B, int64_t H, int64_t L,
                       int64_t d, int64_t P, int64_t T, int64_t r, int64_t W, float scale) {
  extern __shared__ float smem[];  // per warp: q_i [d], acc [d]
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;  // over B*H*L
  if (row >= B * H * L) return;  // whole warps exit together: no block-level sync below
  const int64_t i = row % L, b = row / (H * L);
  float* qs = smem + warp * 2 * d;
  float* acc = qs + d;
  const float* qi = q + row * d;
  for (int64_t c = lane; c < d; c += kWarp) {
    qs[c] = qi[c];
    acc[c] = 0.f;
  }
  __syncwarp();

  int64_t count;
  const int64_t j0 = core::KeyRange(i, P, T, r, &count);
  const float* erow = edge + (b * L + i) * W;
  const int64_t head = row - i;  // (b * H + h) * L
  core::OnlineSoftmax sm = core::OnlineSoftmaxInit();
  for (int64_t w = 0; w < count; ++w) {
    const float a = erow[w];
    if (a == 0.f) continue;  // masked edge (uniform across the warp); a NaN edge counts
    const float* kj = k + (head + j0 + w) * d;
    float dot = 0.f;
    for (int64_t c = lane; c < d; c += kWarp) dot += qs[c] * kj[c];
    const float logit = scale * WarpSum(dot) * a;
    float p;
    const float rescale = core::OnlineSoftmaxAdd(&sm, logit, &p);
    const float* vj = v + (head + j0 + w) * d;
    for (int64_t c = lane; c < d; c += kWarp) acc[c] = acc[c] * rescale + p * vj[c];
  }
  const float inv = 1.f / sm.l;  // l >= 1: the self-loop is always an edge
  float* o = out + row * d;
  for (int64_t c = lane; c < d; c += kWarp) o[c] = acc[c] * inv;
}

}  // namespace

std::string LaunchSTGraphAttention(const STGraphAttentionArgs& a, void* stream_ptr) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  const int threads = kWarpsPerBlock * kWarp;
  const int64_t rows = a.B * a.L;
  NormalizeRows<<<static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock), threads, 0, stream>>>(a.x, a.xn,
                                                                                                             rows, a.D);
  if (auto e = Check(cudaGetLastError()); !e.empty()) return e;
  const int64_t edges = a.B * a.L * a.W;
  EdgeWeights<<<static_cast<unsigned>((edges + 255) / 256), 256, 0, stream>>>(a.xn, a.edge, a.B, a.L, a.D, a.P, a.T,
                                                                              a.r, a.W, a.tau);
  if (auto e = Check(cudaGetLastError()); !e.empty()) return e;
  const int64_t qrows = a.B * a.H * a.L;
  const size_t smem = sizeof(float) * 2 * a.d * kWarpsPerBlock;
  Attend<<<static_cast<unsigned>((qrows + kWarpsPerBlock - 1) / kWarpsPerBlock), threads, smem, stream>>>(
      a.q, a.k, a.v, a.edge, a.out, a.B, a.H, a.L, a.d, a.P, a.T, a.r, a.W, a.scale);
  return Check(cudaGetLastError());
}

}  // namespace cuda
}  // namespace finsta
