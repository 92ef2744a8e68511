// The op table: every finsta op, once. It drives the registration of each execution provider's
// kernels (cpu/register_ops.cc, cuda/register_ops.cc) and the ops list that FinstaOpsInfo reports
// (what finsta_rt.ops and `finsta-rt ops` show). Adding an op: a line here, its <op>_params.h
// (attributes, checks and its Def), its CPU kernel (cpu/<op>.cc) and, for CUDA, cuda/<op>_cuda.cc
// and its kernels; then the sources in CMakeLists.txt. docs/extending.md walks through it.
#pragma once

#include "edge_graph_attention_params.h"
#include "gaussian_diff_graph_attention_params.h"
#include "kernel_op.h"
#include "st_graph_attention_params.h"

// X(Name): each op's Def is finsta::Name##Def, its attributes finsta::Name##Attrs.
#define FINSTA_OPS(X)   \
  X(STGraphAttention)   \
  X(EdgeGraphAttention) \
  X(GaussianDiffGraphAttention)

namespace finsta {

// Each execution provider folder defines these, one per op (cpu/<op>.cc, cuda/<op>_cuda.cc), and
// its RegisterOps (cpu/register_ops.cc, cuda/register_ops.cc: AddOps<Ep> on the domain).
#define FINSTA_DECLARE_COMPUTE(Name) OrtStatusPtr Compute(Ep, const Name##Attrs& attrs, OrtKernelContext* context);
namespace cpu {
FINSTA_OPS(FINSTA_DECLARE_COMPUTE)
void RegisterOps(Ort::CustomOpDomain& domain);
}  // namespace cpu
namespace cuda {
FINSTA_OPS(FINSTA_DECLARE_COMPUTE)
void RegisterOps(Ort::CustomOpDomain& domain);
}  // namespace cuda
#undef FINSTA_DECLARE_COMPUTE

// "STGraphAttention,EdgeGraphAttention,...": the names joined by commas (FinstaOpsInfo's readers
// split on whitespace).
inline std::string OpNames() {
  std::string names;
#define FINSTA_APPEND_NAME(Name) names += (names.empty() ? "" : ",") + std::string(Name##Def::kName);
  FINSTA_OPS(FINSTA_APPEND_NAME)
#undef FINSTA_APPEND_NAME
  return names;
}

// Registers every op of the table for execution provider Ep on `domain`. The ops are static:
// they must outlive every session that uses them.
template <typename Ep>
void AddOps(Ort::CustomOpDomain& domain) {
#define FINSTA_ADD_OP(Name)                       \
  static const KernelOp<Name##Def, Ep> Name##_op; \
  domain.Add(&Name##_op);
  FINSTA_OPS(FINSTA_ADD_OP)
#undef FINSTA_ADD_OP
}

}  // namespace finsta
