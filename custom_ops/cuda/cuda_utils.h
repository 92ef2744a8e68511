// Host-side helpers of the CUDA kernels: scratch memory from ORT's allocator and the on-device
// self-loop check of an adjacency input. No CUDA headers (the launchers live in .cu files).
#pragma once

#include <cstdint>
#include <string>

#include "../common/op_utils.h"
#include "graph_checks.h"

namespace finsta {
namespace cuda {

// Scratch memory from ORT's allocator for the input's device, released when it leaves scope.
// Work queued on ORT's stream is ordered before any later use of the same arena memory.
class Scratch {
 public:
  Scratch(OrtAllocator* alloc, size_t bytes) : alloc_(alloc), p_(bytes ? alloc->Alloc(alloc, bytes) : nullptr) {}
  ~Scratch() {
    if (p_) alloc_->Free(alloc_, p_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T = float>
  T* get() const {
    return static_cast<T*>(p_);
  }

 private:
  OrtAllocator* alloc_;
  void* p_;
};

// Checks the self-loops of a device adjacency [B, N, N] before any kernel reads through it.
// Waits for ORT's stream: the answer must be on the host to become an error status.
inline OrtStatusPtr CheckSelfLoopsOnDevice(const std::string& op, const Ort::KernelContext& ctx, OrtAllocator* alloc,
                                           const uint8_t* adj, int64_t B, int64_t N) {
  if (B * N == 0) return nullptr;
  Scratch flag(alloc, sizeof(unsigned long long));
  unsigned long long missing = core::kNoMissingNode;
  const std::string err =
      FindMissingSelfLoop(adj, B, N, flag.get<unsigned long long>(), ctx.GetGPUComputeStream(), &missing);
  if (!err.empty()) return MakeError(op, "CUDA self-loop check failed: " + err, ORT_FAIL);
  if (missing != core::kNoMissingNode) return MissingSelfLoopError(op, "adj", missing, N);
  return nullptr;
}

}  // namespace cuda
}  // namespace finsta
