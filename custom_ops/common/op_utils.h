// Helpers shared by every finsta kernel: status construction, attribute reading and the shape
// checks that run before any kernel touches memory. Host-only (ORT C++ API).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "kernel_core.h"
#include "onnxruntime_cxx_api.h"

namespace finsta {

// An error status for ORT; `op` prefixes the message so a user sees which node failed.
inline OrtStatusPtr MakeError(const std::string& op, const std::string& msg, OrtErrorCode code = ORT_INVALID_ARGUMENT) {
  return Ort::GetApi().CreateStatus(code, (op + ": " + msg).c_str());
}

inline std::string ShapeToString(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

// A float as a person would write it ("0.5", "-0", "nan", "1e-30"), for messages.
inline std::string FloatToString(float v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

inline const char* DtypeName(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
      return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE:
      return "float64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
      return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16:
      return "bfloat16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8:
      return "int8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8:
      return "uint8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16:
      return "int16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32:
      return "int32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
      return "int64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL:
      return "bool";
    default:
      return "an unsupported type";
  }
}

// Shape and dtype of one input, read without touching its data.
struct InputInfo {
  std::string name;
  ONNXTensorElementDataType dtype = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> shape;
};

inline InputInfo ReadInput(const Ort::KernelContext& ctx, size_t index, const char* name) {
  Ort::ConstValue v = ctx.GetInput(index);
  auto info = v.GetTensorTypeAndShapeInfo();
  return InputInfo{name, info.GetElementType(), info.GetShape()};
}

// Returns nullptr when `in` has the given rank and dtype, else an error naming the input.
inline OrtStatusPtr CheckRankAndType(const std::string& op, const InputInfo& in, size_t rank, const char* layout,
                                     ONNXTensorElementDataType dtype) {
  if (in.dtype != dtype)
    return MakeError(op, "input '" + in.name + "' must be " + DtypeName(dtype) + ", got " + DtypeName(in.dtype));
  if (in.shape.size() != rank)
    return MakeError(op, "input '" + in.name + "' must have rank " + std::to_string(rank) + " " + layout +
                             ", got shape " + ShapeToString(in.shape));
  for (int64_t d : in.shape)
    if (d < 0) return MakeError(op, "input '" + in.name + "' has a negative dimension");
  return nullptr;
}

// Checks that q, k and v are float32 rank-4 tensors (`layout` names the dims) of one shape.
inline OrtStatusPtr CheckQKV(const std::string& op, const InputInfo& q, const InputInfo& k, const InputInfo& v,
                             const char* layout) {
  for (const InputInfo* t : {&q, &k, &v})
    if (OrtStatusPtr s = CheckRankAndType(op, *t, 4, layout, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)) return s;
  for (const InputInfo* t : {&k, &v})
    if (t->shape != q.shape)
      return MakeError(op, "input '" + t->name + "' has shape " + ShapeToString(t->shape) + " but 'q' has shape " +
                               ShapeToString(q.shape) + " (q, k and v must match)");
  return nullptr;
}

// Checks that `adj` is a bool [B, N, N] adjacency for the given B and N.
inline OrtStatusPtr CheckAdjacency(const std::string& op, const InputInfo& adj, int64_t B, int64_t N) {
  if (OrtStatusPtr s = CheckRankAndType(op, adj, 3, "[B, N, N]", ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL)) return s;
  if (adj.shape != std::vector<int64_t>{B, N, N})
    return MakeError(op, "input '" + adj.name + "' must have shape [B, N, N] = " + ShapeToString({B, N, N}) + ", got " +
                             ShapeToString(adj.shape));
  return nullptr;
}

// The error for a missing self-loop at flat node index b * N + n.
inline OrtStatusPtr MissingSelfLoopError(const std::string& op, const char* input, unsigned long long node, int64_t N) {
  const std::string b = std::to_string(node / N), n = std::to_string(node % N);
  return MakeError(op, std::string("input '") + input + "' lacks the self-loop of node " + n + " in batch " + b + " (" +
                           input + "[" + b + ", " + n + ", " + n + "] is false); every node, padded " +
                           "ones included, needs one");
}

// Scans the diagonal of a host adjacency [B, N, N] (already shape-checked).
inline OrtStatusPtr CheckSelfLoops(const std::string& op, const char* input, const uint8_t* adj, int64_t B, int64_t N) {
  for (int64_t node = 0; node < B * N; ++node) {
    const unsigned long long missing = core::MissingSelfLoop(adj, N, node);
    if (missing != core::kNoMissingNode) return MissingSelfLoopError(op, input, missing, N);
  }
  return nullptr;
}

// The type of a node attribute, as far as ORT's custom-op API can tell. That API reads an
// attribute by name and type only: it cannot list a node's attributes (a misspelt or extra one is
// refused on the model file instead, model_check.h) nor say an attribute's type, so ProbeAttr
// tries every reader. A list of strings, a graph or a sparse tensor reads as kMissing.
enum class AttrKind { kMissing, kFloat, kInt, kString, kFloats, kInts, kList, kTensor };

inline const char* AttrKindName(AttrKind k) {
  switch (k) {
    case AttrKind::kFloat:
      return "a float";
    case AttrKind::kInt:
      return "an int";
    case AttrKind::kString:
      return "a string";
    case AttrKind::kFloats:
      return "a list of floats";
    case AttrKind::kInts:
      return "a list of ints";
    case AttrKind::kList:
      return "an empty list";
    case AttrKind::kTensor:
      return "a tensor";
    default:
      return "missing";
  }
}

inline AttrKind ProbeAttr(const OrtKernelInfo* info, const char* name) {
  const OrtApi& api = Ort::GetApi();
  auto ok = [&api](OrtStatusPtr st) {
    if (!st) return true;
    api.ReleaseStatus(st);
    return false;
  };
  float f;
  int64_t i;
  size_t n = 0;
  if (ok(api.KernelInfoGetAttribute_float(info, name, &f))) return AttrKind::kFloat;
  if (ok(api.KernelInfoGetAttribute_int64(info, name, &i))) return AttrKind::kInt;
  if (ok(api.KernelInfoGetAttribute_string(info, name, nullptr, &n))) return AttrKind::kString;
  // The array readers do not check the element type (measured with onnxruntime 1.31: a list of
  // ints reads as an empty list of floats), so the reader that finds elements wins.
  size_t nf = 0, ni = 0;
  const bool floats = ok(api.KernelInfoGetAttributeArray_float(info, name, nullptr, &nf));
  const bool ints = ok(api.KernelInfoGetAttributeArray_int64(info, name, nullptr, &ni));
  if (floats && nf > 0) return AttrKind::kFloats;
  if (ints && ni > 0) return AttrKind::kInts;
  if (floats || ints) return AttrKind::kList;
  OrtAllocator* alloc = nullptr;
  OrtValue* value = nullptr;
  if (ok(api.GetAllocatorWithDefaultOptions(&alloc)) &&
      ok(api.KernelInfoGetAttribute_tensor(info, name, alloc, &value))) {
    api.ReleaseValue(value);
    return AttrKind::kTensor;
  }
  return AttrKind::kMissing;
}

template <typename T>
struct AttrReader;
template <>
struct AttrReader<int64_t> {
  static constexpr AttrKind kKind = AttrKind::kInt;
  static constexpr const char* kWord = "int";
  static OrtStatusPtr Read(const OrtKernelInfo* info, const char* name, int64_t* out) {
    return Ort::GetApi().KernelInfoGetAttribute_int64(info, name, out);
  }
};
template <>
struct AttrReader<float> {
  static constexpr AttrKind kKind = AttrKind::kFloat;
  static constexpr const char* kWord = "float";
  static OrtStatusPtr Read(const OrtKernelInfo* info, const char* name, float* out) {
    return Ort::GetApi().KernelInfoGetAttribute_float(info, name, out);
  }
};

// Reads attribute `name` of type T into *out. Absent: an error if `required`, else *out keeps its
// default and *present (if given) is false. Present with another type: always an error (never the
// default in silence). Kernels must not throw across the C ABI, hence statuses.
template <typename T>
OrtStatusPtr ReadAttr(const std::string& op, const OrtKernelInfo* info, const char* name, bool required, T* out,
                      bool* present = nullptr) {
  if (present) *present = false;
  OrtStatusPtr st = AttrReader<T>::Read(info, name, out);
  if (!st) {
    if (present) *present = true;
    return nullptr;
  }
  Ort::GetApi().ReleaseStatus(st);
  const AttrKind kind = ProbeAttr(info, name);
  if (kind != AttrKind::kMissing)
    return MakeError(op, std::string("attribute '") + name + "' must be " + AttrKindName(AttrReader<T>::kKind) +
                             ", got " + AttrKindName(kind));
  if (required)
    return MakeError(op, std::string("required ") + AttrReader<T>::kWord + " attribute '" + name + "' is missing");
  return nullptr;
}

using core::ProductFits;

inline OrtStatusPtr TooLargeError(const std::string& op, const std::string& what) {
  return MakeError(op, "tensor too large: " + what + " exceeds " + std::to_string(core::kMaxElements) + " elements");
}

// Runs `body` and converts any exception (ORT's C++ wrappers throw Ort::Exception) into a status.
template <typename F>
OrtStatusPtr Guard(const std::string& op, F&& body) noexcept {
  try {
    return body();
  } catch (const Ort::Exception& e) {
    return MakeError(op, e.what(), e.GetOrtErrorCode());
  } catch (const std::exception& e) {
    return MakeError(op, e.what(), ORT_RUNTIME_EXCEPTION);
  } catch (...) {
    return MakeError(op, "unknown error", ORT_RUNTIME_EXCEPTION);
  }
}

}  // namespace finsta
