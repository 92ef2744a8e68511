// Launcher for the EdgeGraphAttention CUDA kernel (no ORT types: plain pointers and sizes).
#pragma once

#include <cstdint>
#include <string>

namespace finsta {
namespace cuda {

struct EdgeGraphAttentionArgs {
  const float *q, *k, *v, *e;
  const uint8_t* adj;  // [B, N, N] bytes, self-loops already checked
  float *h, *e_out;
  int64_t B, H, N, d;
  float clamp, scale;
};

// Largest head dim the kernel takes (its per-warp shared memory holds 2 d floats).
constexpr int64_t kEdgeGraphAttentionMaxHeadDim = 1024;
// Largest B * H * N one launch covers (one warp per query row, a 1-D grid of 4-warp blocks).
constexpr int64_t kEdgeGraphAttentionMaxRows = int64_t{1} << 32;

// Launches the kernel on `stream` (a cudaStream_t). Returns an empty string on success, else the
// CUDA error.
std::string LaunchEdgeGraphAttention(const EdgeGraphAttentionArgs& args, void* stream);

}  // namespace cuda
}  // namespace finsta
