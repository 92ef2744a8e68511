// GaussianDiffGraphAttention CUDA kernel: one warp per (b, h, query i); visits the keys j with
// adj(i, j) (uniform across the warp), logit = q_i.k_j d^-1/2 + log g_ij with log g computed from
// the positions, online softmax, lanes split the head dim. Never [B, H, N, N].
#include "gaussian_diff_graph_attention_kernels.h"

#include <cuda_runtime.h>

#include "../common/gaussian_diff_graph_attention_core.h"
#include "device_utils.cuh"

namespace finsta {
namespace cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

__global__ void GaussianAttend(const GaussianDiffGraphAttentionArgs a) {
  extern __shared__ float smem[];  // per warp: q_i [d], acc [d]
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int64_t N = a.N, d = a.d;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;  // over B*H*N
  if (row >= a.B * a.H * N) return;  // whole warps exit together: no block-level sync below
  const int64_t i = row % N, h = (row / N) % a.H, b = row / (a.H * N), head = row - i;
  float* qs = smem + warp * 2 * d;
  float* acc = qs + d;
  for (int64_t c = lane; c < d; c += kWarp) {
    qs[c] = a.q[row * d + c];
    acc[c] = 0.f;
  }
  __syncwarp();

  float inv_sigma[3], pi[3];
  for (int c = 0; c < 3; ++c) {
    inv_sigma[c] = a.inv_sigma[h * 3 + c];
    pi[c] = a.pos[(b * N + i) * 3 + c];
  }
  core::OnlineSoftmax sm = core::OnlineSoftmaxInit();
  for (int64_t j = 0; j < N; ++j) {
    if (!core::HasEdge(a.adj, N, b, i, j)) continue;  // uniform across the warp
    const float* kj = a.k + (head + j) * d;
    float dot = 0.f;
    for (int64_t c = lane; c < d; c += kWarp) dot += qs[c] * kj[c];
    const float logit = a.scale * WarpSum(dot) + core::LogGaussian(pi, a.pos + (b * N + j) * 3, inv_sigma);
    float p;
    const float rescale = core::OnlineSoftmaxAdd(&sm, logit, &p);
    const float* vj = a.v + (head + j) * d;
    for (int64_t c = lane; c < d; c += kWarp) acc[c] = acc[c] * rescale + p * vj[c];
  }
  const float inv = 1.f / sm.l;  // l >= 1: the self-loop is an edge with a finite logit
  float* o = a.out + row * 2 * d;
  for (int64_t c = lane; c < d; c += kWarp) {
    const float ctx = acc[c] * inv;
    o[c] = ctx;
    o[d + c] = ctx - a.v[row * d + c];  // sum_j alpha_ij (v_j - v_i): alpha sums to 1
  }
}

}  // namespace

std::string LaunchGaussianDiffGraphAttention(const GaussianDiffGraphAttentionArgs& a, void* stream_ptr) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  // From pageable host memory: staged before the call returns, so the host buffer may go after it.
  if (auto e = Check(
          cudaMemcpyAsync(a.inv_sigma, a.inv_sigma_host, sizeof(float) * 3 * a.H, cudaMemcpyHostToDevice, stream));
      !e.empty())
    return e;
  const int64_t rows = a.B * a.H * a.N;
  const size_t smem = sizeof(float) * 2 * a.d * kWarpsPerBlock;  // <= 32 KiB for d <= 1024
  GaussianAttend<<<static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock), kWarpsPerBlock * kWarp, smem,
                   stream>>>(a);
  return Check(cudaGetLastError());
}

}  // namespace cuda
}  // namespace finsta
