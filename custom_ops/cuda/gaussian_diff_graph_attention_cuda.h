// GaussianDiffGraphAttention on ORT's CUDA execution provider (same name, domain and version as
// the CPU op). sigma [H, 3] is taken in host memory: the kernel checks its values before launching.
#pragma once

#include "../common/gaussian_diff_graph_attention_params.h"

namespace finsta {
namespace cuda {

struct GaussianDiffGraphAttentionKernel {
  OrtStatusPtr ComputeV2(OrtKernelContext* context);
};

struct GaussianDiffGraphAttentionOp
    : Ort::CustomOpBase<GaussianDiffGraphAttentionOp, GaussianDiffGraphAttentionKernel, /*WithStatus=*/true> {
  static constexpr size_t kSigmaInput = 5;
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const { return kGaussianDiffGraphAttention; }
  const char* GetExecutionProviderType() const { return "CUDAExecutionProvider"; }
  size_t GetInputTypeCount() const { return 6; }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED; }
  OrtMemType GetInputMemoryType(size_t i) const { return i == kSigmaInput ? OrtMemTypeCPUInput : OrtMemTypeDefault; }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  GaussianDiffGraphAttentionOp() { start_ver_ = 1; end_ver_ = 1; }
};

}  // namespace cuda
}  // namespace finsta
