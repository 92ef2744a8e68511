// EdgeGraphAttention CUDA kernel: one warp per (b, h, query i). For each key j the lanes split the
// head dim: s = q_i k_j d^-1/2 e_ij is written to e_out (coalesced along d) and warp-summed into
// the logit; an edge's clipped logit enters an online softmax (running max, as core::OnlineSoftmax),
// and core::EdgeAttentionNorm turns its sums into h without forming exp(c), which overflows.
#include "edge_graph_attention_kernels.h"

#include <cuda_runtime.h>

#include "../common/edge_graph_attention_core.h"
#include "device_utils.cuh"

namespace finsta {
namespace cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

__global__ void EdgeAttend(const EdgeGraphAttentionArgs a) {
  extern __shared__ float smem[];  // per warp: scaled q_i [d], acc [d]
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int64_t N = a.N, d = a.d;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;  // over B*H*N
  if (row >= a.B * a.H * N) return;  // whole warps exit together: no block-level sync below
  const int64_t i = row % N, b = row / (a.H * N), head = row - i;
  float* qs = smem + warp * 2 * d;
  float* acc = qs + d;
  for (int64_t c = lane; c < d; c += kWarp) {
    qs[c] = a.q[row * d + c] * a.scale;
    acc[c] = 0.f;
  }
  __syncwarp();

  const float* erow = a.e + row * N * d;
  float* orow = a.e_out + row * N * d;
  core::OnlineSoftmax sm = core::OnlineSoftmaxInit();
  for (int64_t j = 0; j < N; ++j) {
    const float* kj = a.k + (head + j) * d;
    float part = 0.f;
    for (int64_t c = lane; c < d; c += kWarp) {
      const float s = qs[c] * kj[c] * erow[j * d + c];
      orow[j * d + c] = s;
      part += s;
    }
    const float logit = WarpSum(part);
    if (!core::HasEdge(a.adj, N, b, i, j)) continue;  // uniform across the warp
    float p;
    const float rescale = core::OnlineSoftmaxAdd(&sm, core::EdgeAttentionLogit(logit, a.clamp), &p);
    const float* vj = a.v + (head + j) * d;
    for (int64_t c = lane; c < d; c += kWarp) acc[c] = acc[c] * rescale + p * vj[c];
  }
  const core::EdgeAttentionScale norm = core::EdgeAttentionNorm(sm.l, sm.m);  // l >= 1: the self-loop
  for (int64_t c = lane; c < d; c += kWarp) a.h[row * d + c] = acc[c] * norm.a * norm.b;
}

}  // namespace

std::string LaunchEdgeGraphAttention(const EdgeGraphAttentionArgs& a, void* stream_ptr) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  const int64_t rows = a.B * a.H * a.N;
  const size_t smem = sizeof(float) * 2 * a.d * kWarpsPerBlock;  // <= 32 KiB for d <= 1024
  EdgeAttend<<<static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock), kWarpsPerBlock * kWarp, smem,
               stream>>>(a);
  return Check(cudaGetLastError());
}

}  // namespace cuda
}  // namespace finsta
