// The attribute names of a model's finsta nodes, checked on the model file itself (docs/ops.md,
// "Attribute names"). ONNX Runtime's custom-op API reads a node's attributes by name only: up to
// onnxruntime 1.31 (C API 31) no call lists a kernel's attributes (OrtKernelInfo has no path to the
// OrtNode that Node_GetAttributes reads, and ORT's schema check accepts any attribute on a custom
// op), so a kernel cannot see a misspelt or extra attribute. The loaders check the file
// before they create a session instead: finsta_rt (finsta_rt/op_check.py) and the C++ runtime
// (runtime/src/op_check.h), through the library's FinstaCheckModel (register.cc). A bare
// ORT session that only registers the library does not run this check.
//
// The reader walks the protobuf wire format of onnx.ModelProto with bounds checks on every read
// and a nesting limit (a model file is untrusted input); it reads only what it needs (node domain,
// op type, name, attribute names and subgraphs) and skips every other field by its wire type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "op_table.h"

namespace finsta {
namespace model_check {

// Field numbers of onnx.proto (onnx/onnx.proto3; stable since IR version 3).
constexpr uint32_t kModelGraph = 7, kModelFunctions = 25;                                // ModelProto
constexpr uint32_t kFunctionNode = 7;                                                    // FunctionProto
constexpr uint32_t kGraphNode = 1;                                                       // GraphProto
constexpr uint32_t kNodeName = 3, kNodeOpType = 4, kNodeAttribute = 5, kNodeDomain = 7;  // NodeProto
constexpr uint32_t kAttrName = 1, kAttrGraph = 6, kAttrGraphs = 11;                      // AttributeProto
// Deeper nesting (subgraph in subgraph ...) is refused; protobuf's own parser stops at 100 too.
constexpr int kMaxDepth = 100;

// A bounds-checked cursor over one protobuf message.
class Wire {
 public:
  Wire(const uint8_t* begin, const uint8_t* end, const uint8_t* base) : p_(begin), end_(end), base_(base) {}
  bool Done() const { return p_ == end_; }
  size_t Offset() const { return static_cast<size_t>(p_ - base_); }
  // The unread bytes, as a string (a length-delimited payload read whole).
  std::string Text() const { return std::string(reinterpret_cast<const char*>(p_), static_cast<size_t>(end_ - p_)); }

  bool Varint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const uint8_t b = *p_++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *out = v;
        return true;
      }
    }
    return false;  // more than 10 bytes
  }
  // A field's key: its number (> 0) and wire type.
  bool Key(uint32_t* field, uint32_t* wire_type) {
    uint64_t key = 0;
    if (!Varint(&key) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff) return false;
    *field = static_cast<uint32_t>(key >> 3);
    *wire_type = static_cast<uint32_t>(key & 7);
    return true;
  }
  // The payload of a length-delimited field (wire type 2).
  bool Bytes(Wire* sub) {
    uint64_t n = 0;
    if (!Varint(&n) || n > static_cast<uint64_t>(end_ - p_)) return false;
    *sub = Wire(p_, p_ + n, base_);
    p_ += n;
    return true;
  }
  // Skips the value of a field of `wire_type`; a group (3) up to its end key, nested at most `depth`.
  bool Skip(uint32_t field, uint32_t wire_type, int depth) {
    uint64_t v = 0;
    Wire sub(nullptr, nullptr, nullptr);
    switch (wire_type) {
      case 0:
        return Varint(&v);
      case 1:
        return Advance(8);
      case 2:
        return Bytes(&sub);
      case 5:
        return Advance(4);
      case 3: {
        if (depth <= 0) return false;
        uint32_t f = 0, wt = 0;
        while (Key(&f, &wt)) {
          if (wt == 4) return f == field;
          if (!Skip(f, wt, depth - 1)) return false;
        }
        return false;
      }
      default:
        return false;  // 4 (an unmatched end group), 6, 7
    }
  }

 private:
  bool Advance(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }
  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* base_;
};

// A name from the file as it may be shown: printable ASCII kept, other bytes as \xNN, at most 80.
inline std::string Shown(const std::string& raw) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < raw.size() && i < 80; ++i) {
    const uint8_t c = static_cast<uint8_t>(raw[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      s += static_cast<char>(c);
    } else {
      s += "\\x";
      s += hex[c >> 4];
      s += hex[c & 15];
    }
  }
  if (raw.size() > 80) s += "...";
  return s;
}

// The attribute names an op reads (its Def::kAttrNames), or nullptr if `op_type` is not a finsta op.
struct OpAttrs {
  const char* op;
  const char* const* names;
  size_t count;
};

inline const OpAttrs* FindOp(const std::string& op_type) {
#define FINSTA_OP_ATTRS(Name) OpAttrs{Name##Def::kName, Name##Def::kAttrNames.data(), Name##Def::kAttrNames.size()},
  static const OpAttrs table[] = {FINSTA_OPS(FINSTA_OP_ATTRS)};
#undef FINSTA_OP_ATTRS
  for (const OpAttrs& t : table)
    if (op_type == t.op) return &t;
  return nullptr;
}

inline std::string KnownList(const OpAttrs& op) {
  if (op.count == 0) return "the op takes no attributes";
  std::string s = "known attributes: ";
  for (size_t i = 0; i < op.count; ++i) s += (i ? ", " : "") + std::string(op.names[i]);
  return s;
}

class Checker {
 public:
  Checker(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  // Empty when every finsta node's attributes are known, else the first problem found.
  std::string Run() {
    Wire model(data_, data_ + size_, data_);
    Fields(model, kMaxDepth, [&](uint32_t field, Wire& v) {
      if (field == kModelGraph) return Graph(v, kMaxDepth - 1);
      if (field == kModelFunctions)  // FunctionProto: its nodes, as a graph's
        return Fields(v, kMaxDepth - 1,
                      [&](uint32_t f, Wire& n) { return f != kFunctionNode || Node(n, kMaxDepth - 2); });
      return true;
    });
    return error_;
  }

 private:
  // Walks the fields of one message: `on_bytes(field, payload)` gets each length-delimited field,
  // every other is skipped. False (and error_ set) at the first malformed byte or failed check.
  template <typename F>
  bool Fields(Wire& w, int depth, F&& on_bytes) {
    if (depth <= 0)
      return Fail("messages nested more than " + std::to_string(kMaxDepth) + " deep (subgraphs in subgraphs)");
    uint32_t field = 0, wt = 0;
    while (!w.Done()) {
      if (!w.Key(&field, &wt)) return Fail(Malformed(w));
      if (wt != 2) {
        if (!w.Skip(field, wt, depth)) return Fail(Malformed(w));
        continue;
      }
      Wire value(nullptr, nullptr, nullptr);
      if (!w.Bytes(&value)) return Fail(Malformed(w));
      if (!on_bytes(field, value)) return false;
    }
    return true;
  }

  bool Graph(Wire& w, int depth) {
    return Fields(w, depth, [&](uint32_t f, Wire& n) { return f != kGraphNode || Node(n, depth - 1); });
  }

  // One NodeProto: its subgraphs are walked whatever its domain; a finsta node's attribute names
  // must be ones its op reads, each once. Protobuf keeps the last of a repeated scalar field.
  bool Node(Wire& w, int depth) {
    std::string name, op_type, domain;
    std::vector<Wire> attrs;
    const bool ok = Fields(w, depth, [&](uint32_t f, Wire& v) {
      if (f == kNodeName) name = v.Text();
      if (f == kNodeOpType) op_type = v.Text();
      if (f == kNodeDomain) domain = v.Text();
      if (f == kNodeAttribute) attrs.push_back(v);
      return true;
    });
    if (!ok) return false;
    ++nodes_;
    const OpAttrs* op = domain == kDomain ? FindOp(op_type) : nullptr;
    std::vector<std::string> seen;
    for (Wire& a : attrs) {
      std::string attr;
      bool has_name = false;
      const bool read = Fields(a, depth - 1, [&](uint32_t f, Wire& v) {
        if (f == kAttrName) {
          attr = v.Text();
          has_name = true;
        }
        return (f != kAttrGraph && f != kAttrGraphs) || Graph(v, depth - 2);
      });
      if (!read) return false;
      if (!op) continue;
      const std::string where =
          op_type + ": node " + (name.empty() ? "#" + std::to_string(nodes_) : "'" + Shown(name) + "'");
      if (!has_name) return Fail(where + " has an attribute without a name");
      bool known = false;
      for (size_t i = 0; i < op->count; ++i) known = known || attr == op->names[i];
      if (!known) return Fail(where + " has unknown attribute '" + Shown(attr) + "' (" + KnownList(*op) + ")");
      for (const std::string& s : seen)
        if (s == attr) return Fail(where + " has attribute '" + attr + "' twice");
      seen.push_back(attr);
    }
    return true;
  }

  static std::string Malformed(const Wire& w) {
    return "not a valid ONNX model: the protobuf data is malformed near byte " + std::to_string(w.Offset());
  }
  bool Fail(const std::string& msg) {
    if (error_.empty()) error_ = msg;
    return false;
  }

  const uint8_t* data_;
  size_t size_;
  size_t nodes_ = 0;  // nodes read so far: names an unnamed node
  std::string error_;
};

// Empty when the serialized ModelProto `data` is readable and every finsta node in it (subgraphs
// and model-local functions included) carries only attributes its op reads; else the reason.
inline std::string CheckModel(const void* data, size_t size) {
  return Checker(static_cast<const uint8_t*>(data), size).Run();
}

}  // namespace model_check
}  // namespace finsta
