// STGraphAttention on ORT's CUDA execution provider (same name, domain and version as the CPU op).
#pragma once

#include "../common/st_graph_attention_params.h"

namespace finsta {
namespace cuda {

struct STGraphAttentionKernel {
  STGraphAttentionAttrs attrs;
  OrtStatusPtr ComputeV2(OrtKernelContext* context);
};

struct STGraphAttentionOp
    : Ort::CustomOpBase<STGraphAttentionOp, STGraphAttentionKernel, /*WithStatus=*/true> {
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const { return kSTGraphAttention; }
  const char* GetExecutionProviderType() const { return "CUDAExecutionProvider"; }
  size_t GetInputTypeCount() const { return 4; }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED; }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  STGraphAttentionOp() { start_ver_ = 1; end_ver_ = 1; }
};

}  // namespace cuda
}  // namespace finsta
