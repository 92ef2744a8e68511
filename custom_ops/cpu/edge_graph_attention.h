// EdgeGraphAttention on ORT's CPU execution provider.
#pragma once

#include "../common/edge_graph_attention_params.h"

namespace finsta {
namespace cpu {

struct EdgeGraphAttentionKernel {
  EdgeGraphAttentionAttrs attrs;
  OrtStatusPtr ComputeV2(OrtKernelContext* context);
};

struct EdgeGraphAttentionOp
    : Ort::CustomOpBase<EdgeGraphAttentionOp, EdgeGraphAttentionKernel, /*WithStatus=*/true> {
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const { return kEdgeGraphAttention; }
  const char* GetExecutionProviderType() const { return "CPUExecutionProvider"; }
  size_t GetInputTypeCount() const { return 5; }
  // Any element type is accepted here so that the kernel reports a wrong dtype in its own words.
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED; }
  size_t GetOutputTypeCount() const { return 2; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  EdgeGraphAttentionOp() { start_ver_ = 1; end_ver_ = 1; }
};

}  // namespace cpu
}  // namespace finsta
