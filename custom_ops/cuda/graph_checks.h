// Device-side input checks shared by the graph ops' CUDA kernels (no ORT or CUDA types).
#pragma once

#include <cstdint>
#include <string>

namespace finsta {
namespace cuda {

// Largest B * N the self-loop check launches over (one thread per node, a 1-D grid).
constexpr int64_t kMaxCheckedNodes = int64_t{1} << 38;

// Writes to *missing the smallest node index b * N + n whose self-loop adj[b, n, n] is false
// (core::kNoMissingNode if none). adj: device [B, N, N] bytes; flag: device scratch for one value.
// Synchronises `stream` (a cudaStream_t). Returns an empty string on success, else the CUDA error.
std::string FindMissingSelfLoop(const uint8_t* adj, int64_t B, int64_t N, unsigned long long* flag, void* stream,
                                unsigned long long* missing);

}  // namespace cuda
}  // namespace finsta
