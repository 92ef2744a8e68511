// Self-loop check of a device adjacency: one thread per node, the smallest missing node wins.
#include "graph_checks.h"

#include <cuda_runtime.h>

#include "../common/kernel_core.h"
#include "device_utils.cuh"

namespace finsta {
namespace cuda {
namespace {

__global__ void SelfLoopCheck(const uint8_t* __restrict__ adj, int64_t nodes, int64_t N,
                              unsigned long long* __restrict__ flag) {
  const int64_t node = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (node >= nodes) return;
  const unsigned long long missing = core::MissingSelfLoop(adj, N, node);
  if (missing != core::kNoMissingNode) atomicMin(flag, missing);
}

}  // namespace

std::string FindMissingSelfLoop(const uint8_t* adj, int64_t B, int64_t N, unsigned long long* flag, void* stream_ptr,
                                unsigned long long* missing) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  const int64_t nodes = B * N;
  if (nodes > kMaxCheckedNodes) return "adjacency too large for the self-loop check";
  if (auto e = Check(cudaMemsetAsync(flag, 0xff, sizeof *flag, stream)); !e.empty()) return e;  // kNoMissingNode
  SelfLoopCheck<<<static_cast<unsigned>((nodes + 255) / 256), 256, 0, stream>>>(adj, nodes, N, flag);
  if (auto e = Check(cudaGetLastError()); !e.empty()) return e;
  if (auto e = Check(cudaMemcpyAsync(missing, flag, sizeof *flag, cudaMemcpyDeviceToHost, stream)); !e.empty())
    return e;
  return Check(cudaStreamSynchronize(stream));
}

}  // namespace cuda
}  // namespace finsta
