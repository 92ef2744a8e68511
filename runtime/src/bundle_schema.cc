// bundle.yaml's bounds and type checks: a port of finsta_rt/bundle.py read_manifest, _kind and _Schema.
#include "bundle_schema.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include "finsta_rt/errors.h"
#include "py_format.h"
#include "yaml_values.h"

namespace fs = std::filesystem;

namespace finsta_rt::schema {
namespace {

using yaml::Kind;

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + items[i];
  return s;
}

// bundle.py _OPENERS: MAX_NESTING + 1 flow openers ('[' or '{') in a row, with only whitespace between;
// the cheap common case of deep nesting, refused before parsing.
bool deep_flow_openers(const std::string& raw) {
  int run = 0;
  for (char c : raw) {
    if (c == '[' || c == '{') {
      if (++run > kMaxNesting) return true;
    } else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
      run = 0;
    }
  }
  return false;
}

struct LimitError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// bundle.py _ManifestLoader.compose_node on parser events: refuses aliases and bounds the nesting depth
// (every node counts a level, as the composer does) and the number of nodes (keys included), in
// document order, before any node is built.
class Limits : public YAML::EventHandler {
 public:
  explicit Limits(const std::string& raw) : raw_(raw) {}
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override {
    throw LimitError(line(m) + "YAML aliases (*" + alias_name(m) + ") are not allowed in a bundle manifest");
  }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string&) override { node(m); }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(m);
    ++open_;
  }
  void OnSequenceEnd() override { --open_; }
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(m);
    ++open_;
  }
  void OnMapEnd() override { --open_; }

 private:
  static std::string line(const YAML::Mark& m) { return "line " + std::to_string(m.line + 1) + ": "; }

  void node(const YAML::Mark& m) {
    if (open_ + 1 > kMaxNesting)
      throw LimitError(line(m) + "nested deeper than " + std::to_string(kMaxNesting) + " levels");
    if (++nodes_ > kMaxNodes) throw LimitError("more than " + std::to_string(kMaxNodes) + " values");
  }

  // The alias token starts at the mark: '*' and the anchor's name.
  std::string alias_name(const YAML::Mark& m) const {
    size_t i = m.pos > 0 ? static_cast<size_t>(m.pos) : 0;
    if (i >= raw_.size() || raw_[i] != '*') i = raw_.find('*', i);
    if (i == std::string::npos) return "";
    size_t j = ++i;
    while (j < raw_.size() && !std::strchr(" \t\r\n,[]{}", raw_[j])) ++j;
    return raw_.substr(i, j - i);
  }

  const std::string& raw_;
  int open_ = 0, nodes_ = 0;
};

// A second document: yaml.safe_load's get_single_data refuses it.
class NoSecondDocument : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {
    throw LimitError("expected a single document in the stream but found another document");
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

void check_limits(const std::string& raw) {
  std::istringstream in(raw);
  YAML::Parser parser(in);
  Limits limits(raw);
  if (!parser.HandleNextDocument(limits)) return;
  NoSecondDocument second;
  parser.HandleNextDocument(second);
}

}  // namespace

YAML::Node read_manifest(const fs::path& path, std::string* raw) {
  const std::string where = path.string();
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) throw BundleError(where + ": cannot read: " + std::strerror(ec.value()));
  if (size > static_cast<uintmax_t>(kMaxManifestBytes))
    throw BundleError(where + ": " + std::to_string(size) + " bytes is larger than the " +
                      std::to_string(kMaxManifestBytes) + " a bundle manifest may have");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw BundleError(where + ": cannot read: " + std::strerror(errno));
  raw->assign(static_cast<size_t>(kMaxManifestBytes) + 1, '\0');  // the file may grow between stat and read
  f.read(raw->data(), static_cast<std::streamsize>(raw->size()));
  if (f.bad()) throw BundleError(where + ": cannot read: " + std::strerror(errno));
  raw->resize(static_cast<size_t>(f.gcount()));
  if (raw->size() > static_cast<size_t>(kMaxManifestBytes))
    throw BundleError(where + ": larger than the " + std::to_string(kMaxManifestBytes) +
                      " bytes a bundle manifest may have");
  if (deep_flow_openers(*raw))
    throw BundleError(where + ": not valid YAML: nested deeper than " + std::to_string(kMaxNesting) + " levels");
  YAML::Node m;
  try {
    check_limits(*raw);  // before any node is built, as the Python composer checks while composing
    m = YAML::Load(*raw);
    yaml::check_safe(m);
  } catch (const YAML::Exception& e) {
    throw BundleError(where + ": not valid YAML: " + e.what());
  } catch (const std::runtime_error& e) {
    throw BundleError(where + ": not valid YAML: " + e.what());
  }
  if (yaml::kind(m) != Kind::kDict)
    throw BundleError(where + ": expected a mapping at the top level, got " + value_kind(m));
  return m;
}

std::string value_kind(const YAML::Node& node) {
  const Kind k = yaml::kind(node);
  if (k == Kind::kNone || k == Kind::kMissing) return "nothing (null)";
  const std::string type = yaml::type_name(node);
  const std::string text = yaml::repr(node);
  size_t chars = 0;  // Python's len: code points
  for (unsigned char c : text) chars += (c & 0xC0) != 0x80;
  return chars <= 40 ? type + " " + text : "a " + type;
}

std::string str_list_repr(const std::vector<std::string>& items) {
  std::string s = "[";
  for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + py::str_repr(items[i]);
  return s + "]";
}

void Schema::error(const std::string& message) const { throw BundleError(where_ + ": " + message); }

void Schema::fail(const std::string& key, const std::string& what, const YAML::Node& v) const {
  error(key + " must be " + what + ", got " + value_kind(v));
}

void Schema::mapping(const YAML::Node& v, const std::string& key, const std::vector<std::string>& required,
                     const std::vector<std::string>* allowed) const {
  if (yaml::kind(v) != Kind::kDict) fail(key, "a mapping", v);
  for (const auto& it : v) {
    if (yaml::kind(it.first) != Kind::kStr)
      fail(key.empty() ? "each top-level key" : key + ": each key", "a string", it.first);
    if (allowed && std::find(allowed->begin(), allowed->end(), it.first.Scalar()) == allowed->end())
      error(key + "." + it.first.Scalar() + " is not a known key (known: " + join(*allowed) + ")");
  }
  for (const auto& r : required)
    if (!yaml::get(v, r).IsDefined()) error((key.empty() ? r : key + "." + r) + " is missing");
}

std::string Schema::string(const YAML::Node& v, const std::string& key, bool (*ok)(const std::string&),
                           const std::string& what) const {
  if (yaml::kind(v) != Kind::kStr || v.Scalar().empty() || (ok && !ok(v.Scalar()))) fail(key, what, v);
  return v.Scalar();
}

std::string Schema::choice(const YAML::Node& v, const std::string& key, const std::vector<std::string>& choices) const {
  if (yaml::kind(v) != Kind::kStr || v.Scalar().empty() ||
      std::find(choices.begin(), choices.end(), v.Scalar()) == choices.end())
    fail(key, "one of " + join(choices), v);
  return v.Scalar();
}

int64_t Schema::integer(const YAML::Node& v, const std::string& key, int64_t lo, int64_t hi) const {
  int64_t n = 0;
  if (!yaml::as_int(v, &n) || n < lo || n > hi)
    fail(key, "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", v);
  return n;
}

bool Schema::boolean(const YAML::Node& v, const std::string& key) const {
  if (yaml::kind(v) != Kind::kBool) fail(key, "true or false", v);
  return yaml::truthy(v);
}

void Schema::items(const YAML::Node& v, const std::string& key, bool nonempty) const {
  if (yaml::kind(v) != Kind::kList || (nonempty && v.size() == 0))
    fail(key, nonempty ? "a non-empty list" : "a list", v);
}

std::vector<TensorSpec> Schema::tensors(const YAML::Node& v, const std::string& key) const {
  static const std::vector<std::string> kFields = {"name", "dtype", "shape"};
  static const std::vector<std::string> kDtypes = {"float32", "float16", "bfloat16", "float64", "int8",
                                                   "int16",   "int32",   "int64",    "uint8",   "uint16",
                                                   "uint32",  "uint64",  "bool",     "string"};
  items(v, key);
  std::vector<TensorSpec> out;
  std::vector<std::string> names;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string k = key + "[" + std::to_string(i) + "]";
    const YAML::Node it = v[i];
    mapping(it, k, kFields, &kFields);
    const YAML::Node shape = yaml::get(it, "shape");
    items(shape, k + ".shape", false);
    TensorSpec t;
    for (size_t j = 0; j < shape.size(); ++j) {
      const std::string dk = k + ".shape[" + std::to_string(j) + "]";
      Dim dim;
      if (yaml::kind(shape[j]) == Kind::kStr)
        dim.symbol = string(shape[j], dk);
      else
        dim.value = integer(shape[j], dk);
      t.shape.push_back(dim);
    }
    t.name = string(yaml::get(it, "name"), k + ".name");
    t.dtype = choice(yaml::get(it, "dtype"), k + ".dtype", kDtypes);
    names.push_back(t.name);
    out.push_back(std::move(t));
  }
  if (std::set<std::string>(names.begin(), names.end()).size() != names.size())
    error(key + " names a tensor twice: " + str_list_repr(names));
  return out;
}

}  // namespace finsta_rt::schema
