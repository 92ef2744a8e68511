// EdgeGraphAttention on ORT's CUDA execution provider (same name, domain and version as the CPU op).
#pragma once

#include "../common/edge_graph_attention_params.h"

namespace finsta {
namespace cuda {

struct EdgeGraphAttentionKernel {
  EdgeGraphAttentionAttrs attrs;
  OrtStatusPtr ComputeV2(OrtKernelContext* context);
};

struct EdgeGraphAttentionOp
    : Ort::CustomOpBase<EdgeGraphAttentionOp, EdgeGraphAttentionKernel, /*WithStatus=*/true> {
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const { return kEdgeGraphAttention; }
  const char* GetExecutionProviderType() const { return "CUDAExecutionProvider"; }
  size_t GetInputTypeCount() const { return 5; }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED; }
  size_t GetOutputTypeCount() const { return 2; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  EdgeGraphAttentionOp() { start_ver_ = 1; end_ver_ = 1; }
};

}  // namespace cuda
}  // namespace finsta
