// Host side of the CUDA EdgeGraphAttention: validates shapes (host metadata only), checks the
// adjacency's self-loops on the device, and launches on ORT's compute stream.
#include "../common/op_table.h"

#include "cuda_utils.h"
#include "edge_graph_attention_kernels.h"

namespace finsta {
namespace cuda {

OrtStatusPtr Compute(Ep, const EdgeGraphAttentionAttrs& attrs, OrtKernelContext* context) {
  const char* op = kEdgeGraphAttention;
  Ort::KernelContext ctx(context);
  if (ctx.GetInputCount() != 5)
    return MakeError(op, "expects 5 inputs (q, k, v, e, adj), got " + std::to_string(ctx.GetInputCount()));
  const InputInfo qi = ReadInput(ctx, 0, "q"), ki = ReadInput(ctx, 1, "k"), vi = ReadInput(ctx, 2, "v"),
                  ei = ReadInput(ctx, 3, "e"), ai = ReadInput(ctx, 4, "adj");
  EdgeGraphAttentionDims dm;
  if (OrtStatusPtr s = ValidateEdgeGraphAttention(attrs, qi, ki, vi, ei, ai, &dm)) return s;
  if (dm.d > kEdgeGraphAttentionMaxHeadDim)
    return MakeError(op, "the CUDA kernel takes head dim d <= " + std::to_string(kEdgeGraphAttentionMaxHeadDim) +
                             ", got d=" + std::to_string(dm.d));
  if (dm.B * dm.H * dm.N >= kEdgeGraphAttentionMaxRows || dm.B * dm.N >= kMaxCheckedNodes)
    return MakeError(op, "problem too large for one CUDA launch");

  Ort::ConstValue adj = ctx.GetInput(4);
  OrtAllocator* alloc = ctx.GetAllocator(*adj.GetTensorMemoryInfo());  // the device the inputs live on
  const auto* adj_data = static_cast<const uint8_t*>(adj.GetTensorRawData());
  if (OrtStatusPtr s = CheckSelfLoopsOnDevice(op, ctx, alloc, adj_data, dm.B, dm.N)) return s;

  float* h = ctx.GetOutput(0, qi.shape).GetTensorMutableData<float>();
  float* e_out = ctx.GetOutput(1, ei.shape).GetTensorMutableData<float>();
  if (dm.Empty()) return nullptr;
  EdgeGraphAttentionArgs args{ctx.GetInput(0).GetTensorData<float>(),
                              ctx.GetInput(1).GetTensorData<float>(),
                              ctx.GetInput(2).GetTensorData<float>(),
                              ctx.GetInput(3).GetTensorData<float>(),
                              adj_data,
                              h,
                              e_out,
                              dm.B,
                              dm.H,
                              dm.N,
                              dm.d,
                              dm.clamp,
                              dm.scale};
  const std::string err = LaunchEdgeGraphAttention(args, ctx.GetGPUComputeStream());
  if (!err.empty()) return MakeError(op, "CUDA launch failed: " + err, ORT_FAIL);
  return nullptr;
}

}  // namespace cuda
}  // namespace finsta
