// Host side of the CUDA GaussianDiffGraphAttention: validates shapes (host metadata only) and
// sigma (in host memory), checks the adjacency's self-loops on the device, and launches on ORT's
// compute stream.
#include "../common/op_table.h"

#include <vector>

#include "cuda_utils.h"
#include "gaussian_diff_graph_attention_kernels.h"

namespace finsta {
namespace cuda {

OrtStatusPtr Compute(Ep, const GaussianDiffGraphAttentionAttrs&, OrtKernelContext* context) {
  const char* op = kGaussianDiffGraphAttention;
  Ort::KernelContext ctx(context);
  if (ctx.GetInputCount() != 6)
    return MakeError(op, "expects 6 inputs (q, k, v, pos, adj, sigma), got " + std::to_string(ctx.GetInputCount()));
  const InputInfo qi = ReadInput(ctx, 0, "q"), ki = ReadInput(ctx, 1, "k"), vi = ReadInput(ctx, 2, "v"),
                  pi = ReadInput(ctx, 3, "pos"), ai = ReadInput(ctx, 4, "adj"), si = ReadInput(ctx, 5, "sigma");
  GaussianDiffGraphAttentionDims dm;
  if (OrtStatusPtr s = ValidateGaussianDiffGraphAttention(qi, ki, vi, pi, ai, si, &dm)) return s;
  if (dm.d > kGaussianDiffGraphAttentionMaxHeadDim)
    return MakeError(op, "the CUDA kernel takes head dim d <= " +
                             std::to_string(kGaussianDiffGraphAttentionMaxHeadDim) + ", got d=" + std::to_string(dm.d));
  if (dm.B * dm.H * dm.N >= kGaussianDiffGraphAttentionMaxRows || dm.B * dm.N >= kMaxCheckedNodes)
    return MakeError(op, "problem too large for one CUDA launch");
  std::vector<float> inv_sigma(static_cast<size_t>(dm.H * 3));
  if (dm.H > 0)  // sigma is a CPU input (GetInputMemoryType): its values are readable here
    if (OrtStatusPtr s = ReadSigma(ctx.GetInput(5).GetTensorData<float>(), dm.H, inv_sigma.data())) return s;

  Ort::ConstValue adj = ctx.GetInput(4);
  OrtAllocator* alloc = ctx.GetAllocator(*adj.GetTensorMemoryInfo());  // the device the inputs live on
  const auto* adj_data = static_cast<const uint8_t*>(adj.GetTensorRawData());
  if (OrtStatusPtr s = CheckSelfLoopsOnDevice(op, ctx, alloc, adj_data, dm.B, dm.N)) return s;

  float* out = ctx.GetOutput(0, {dm.B, dm.H, dm.N, 2 * dm.d}).GetTensorMutableData<float>();
  if (dm.Empty()) return nullptr;
  Scratch inv_sigma_dev(alloc, sizeof(float) * inv_sigma.size());
  GaussianDiffGraphAttentionArgs args{ctx.GetInput(0).GetTensorData<float>(),
                                      ctx.GetInput(1).GetTensorData<float>(),
                                      ctx.GetInput(2).GetTensorData<float>(),
                                      ctx.GetInput(3).GetTensorData<float>(),
                                      adj_data,
                                      inv_sigma.data(),
                                      inv_sigma_dev.get(),
                                      out,
                                      dm.B,
                                      dm.H,
                                      dm.N,
                                      dm.d,
                                      dm.scale};
  const std::string err = LaunchGaussianDiffGraphAttention(args, ctx.GetGPUComputeStream());
  if (!err.empty()) return MakeError(op, "CUDA launch failed: " + err, ORT_FAIL);
  return nullptr;
}

}  // namespace cuda
}  // namespace finsta
