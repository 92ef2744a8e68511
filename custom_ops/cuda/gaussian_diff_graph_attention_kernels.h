// Launcher for the GaussianDiffGraphAttention CUDA kernel (no ORT types: plain pointers and sizes).
#pragma once

#include <cstdint>
#include <string>

namespace finsta {
namespace cuda {

struct GaussianDiffGraphAttentionArgs {
  const float *q, *k, *v, *pos;
  const uint8_t* adj;           // [B, N, N] bytes, self-loops already checked
  const float* inv_sigma_host;  // [H, 3] 1 / sigma, checked on the host
  float* inv_sigma;             // device scratch [H, 3], filled from inv_sigma_host
  float* out;                   // [B, H, N, 2d]
  int64_t B, H, N, d;
  float scale;
};

// Largest head dim the kernel takes (its per-warp shared memory holds 2 d floats).
constexpr int64_t kGaussianDiffGraphAttentionMaxHeadDim = 1024;
// Largest B * H * N one launch covers (one warp per query row, a 1-D grid of 4-warp blocks).
constexpr int64_t kGaussianDiffGraphAttentionMaxRows = int64_t{1} << 32;

// Copies 1 / sigma to the device and launches the kernel on `stream` (a cudaStream_t). Returns an
// empty string on success, else the CUDA error.
std::string LaunchGaussianDiffGraphAttention(const GaussianDiffGraphAttentionArgs& args, void* stream);

}  // namespace cuda
}  // namespace finsta
