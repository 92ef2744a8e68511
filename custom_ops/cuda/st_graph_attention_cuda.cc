// Host side of the CUDA STGraphAttention: validates shapes (host metadata only), takes scratch
// memory from ORT's allocator for the device and launches on ORT's compute stream.
#include "../common/op_table.h"

#include <limits>
#include <memory>

#include "cuda_utils.h"
#include "st_graph_attention_kernels.h"

namespace finsta {
namespace cuda {

OrtStatusPtr Compute(Ep, const STGraphAttentionAttrs& attrs, OrtKernelContext* context) {
  Ort::KernelContext ctx(context);
  if (ctx.GetInputCount() != 4)
    return MakeError(kSTGraphAttention, "expects 4 inputs (x, q, k, v), got " + std::to_string(ctx.GetInputCount()));
  const InputInfo xi = ReadInput(ctx, 0, "x"), qi = ReadInput(ctx, 1, "q"), ki = ReadInput(ctx, 2, "k"),
                  vi = ReadInput(ctx, 3, "v");
  STGraphAttentionDims dm;
  if (OrtStatusPtr s = ValidateSTGraphAttention(attrs, xi, qi, ki, vi, &dm)) return s;
  if (dm.d > kMaxHeadDim)
    return MakeError(kSTGraphAttention, "the CUDA kernel takes head dim d <= " + std::to_string(kMaxHeadDim) +
                                            ", got d=" + std::to_string(dm.d));
  Ort::UnownedValue out_val = ctx.GetOutput(0, qi.shape);
  float* out = out_val.GetTensorMutableData<float>();
  if (dm.B * dm.H * dm.L * dm.d == 0) return nullptr;

  const int64_t W = dm.MaxKeys();
  const int64_t grid_limit = static_cast<int64_t>(std::numeric_limits<int>::max()) * 4;
  if (dm.B * dm.L * W / 256 >= grid_limit || dm.B * dm.H * dm.L / 4 >= grid_limit)
    return MakeError(kSTGraphAttention, "problem too large for one CUDA launch");

  Ort::ConstValue x = ctx.GetInput(0);
  const OrtMemoryInfo* mem = x.GetTensorMemoryInfo();  // the device the inputs live on
  OrtAllocator* alloc = ctx.GetAllocator(*mem);
  Scratch xn(alloc, sizeof(float) * dm.B * dm.L * dm.D);
  Scratch edge(alloc, sizeof(float) * dm.B * dm.L * W);
  STGraphAttentionArgs args{x.GetTensorData<float>(),
                            ctx.GetInput(1).GetTensorData<float>(),
                            ctx.GetInput(2).GetTensorData<float>(),
                            ctx.GetInput(3).GetTensorData<float>(),
                            out,
                            xn.get(),
                            edge.get(),
                            dm.B,
                            dm.L,
                            dm.D,
                            dm.H,
                            dm.d,
                            dm.P,
                            dm.T,
                            dm.r,
                            W,
                            dm.tau,
                            dm.scale};
  const std::string err = LaunchSTGraphAttention(args, ctx.GetGPUComputeStream());
  if (!err.empty()) return MakeError(kSTGraphAttention, "CUDA launch failed: " + err, ORT_FAIL);
  return nullptr;
}

}  // namespace cuda
}  // namespace finsta
