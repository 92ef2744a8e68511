// Bundle loading: the checks, their order and their messages follow finsta_rt/bundle.py.
#include "finsta_rt/bundle.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "finsta_rt/errors.h"
#include "finsta_rt/sha256.h"
#include "py_format.h"
#include "yaml_values.h"

namespace fs = std::filesystem;

namespace finsta_rt {
namespace {

const char* const kFlavours[] = {"custom", "portable"};
const char* const kGraphs[] = {"video", "text", "scorer"};

template <size_t N>
bool one_of(const std::string& s, const char* const (&options)[N]) {
  for (const char* o : options)
    if (s == o) return true;
  return false;
}

template <size_t N>
std::string tuple_repr(const char* const (&options)[N]) {
  std::string s = "(";
  for (size_t i = 0; i < N; ++i) s += (i ? ", " : "") + py::str_repr(options[i]);
  return s + (N == 1 ? ",)" : ")");
}

// A family is any plain name (finsta_rt/bundle.py PLAIN_NAME): [A-Za-z0-9][A-Za-z0-9_.-]{0,63}. What a
// bundle can do is read from its graphs' declared inputs and outputs, never from its family.
bool plain_name(const std::string& s) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (s.empty() || s.size() > 64 || !alnum(s[0])) return false;
  for (char c : s)
    if (!alnum(c) && c != '_' && c != '.' && c != '-') return false;
  return true;
}

// Python's _kind(v) of finsta_rt/bundle.py: the value's type, and the value itself if its repr is
// at most 40 characters (code points, as Python's len).
std::string value_kind(const YAML::Node& node) {
  const yaml::Kind k = yaml::kind(node);
  if (k == yaml::Kind::kNone || k == yaml::Kind::kMissing) return "nothing (null)";
  const char* type = k == yaml::Kind::kBool    ? "bool"
                     : k == yaml::Kind::kInt   ? "int"
                     : k == yaml::Kind::kFloat ? "float"
                     : k == yaml::Kind::kStr   ? "str"
                     : k == yaml::Kind::kList  ? "list"
                                               : "dict";
  const std::string text = yaml::repr(node);
  size_t chars = 0;
  for (unsigned char c : text) chars += (c & 0xC0) != 0x80;
  return chars <= 40 ? std::string(type) + " " + text : std::string("a ") + type;
}

// Python's Path.expanduser() for a leading "~".
fs::path expand_user(const fs::path& p) {
  const std::string s = p.string();
  if (s == "~" || s.rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    if (home) return fs::path(home) / s.substr(s.size() > 1 ? 2 : 1);
  }
  return p;
}

// Python's Path() drops a trailing separator: "b/" names "b".
fs::path strip_trailing_separator(fs::path p) {
  while (!p.has_filename() && p.has_parent_path() && p != p.root_path()) p = p.parent_path();
  return p;
}

bool is_relative_to(const fs::path& full, const fs::path& root) {
  auto f = full.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++f) {
    if (r->empty()) continue;  // a trailing separator of root
    if (f == full.end() || *f != *r) return false;
  }
  return true;
}

std::string read_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw BundleError("cannot read " + path.string());
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace

// Everything bundle.py does in Bundle.load and Bundle.__init__, in the same order.
class BundleLoader {
 public:
  BundleLoader(fs::path root, std::string where) : root_(std::move(root)), where_(std::move(where)) {
    std::error_code ec;
    root_resolved_ = fs::weakly_canonical(fs::absolute(root_, ec), ec);
  }

  // bundle.py _inside: root / rel if it stays inside root (no absolute path, no "..", no symlink out).
  fs::path inside(const YAML::Node& rel, const std::string& what) const {
    if (yaml::kind(rel) != yaml::Kind::kStr || rel.Scalar().empty())
      throw BundleError(where_ + ": " + what + " must be a relative file name, got " + yaml::repr(rel));
    const std::string& s = rel.Scalar();
    fs::path p(s);
    bool dotdot = false;
    for (const auto& part : p) dotdot = dotdot || part == "..";
    if (p.is_absolute() || dotdot)
      throw BundleError(where_ + ": " + what + " " + py::str_repr(s) + " leaves the bundle directory");
    std::error_code ec;
    fs::path full = fs::weakly_canonical(fs::absolute(root_ / p, ec), ec);
    if (ec || !is_relative_to(full, root_resolved_))
      throw BundleError(where_ + ": " + what + " " + py::str_repr(s) + " resolves outside the bundle directory");
    return full;
  }

  PreprocessSpec preprocess(const YAML::Node& node) const {
    auto bad = [&](const std::string& why) { return BundleError(where_ + ": bad preprocess section: " + why); };
    if (yaml::kind(node) != yaml::Kind::kDict) throw bad("expected a mapping, got " + yaml::repr(node));
    PreprocessSpec p;
    YAML::Node size, frames;
    for (const auto& it : node) {
      const std::string key = it.first.Scalar();
      const YAML::Node& v = it.second;
      if (key == "size") size = v;
      else if (key == "frames") frames = v;
      else if (key == "resize" || key == "interpolation" || key == "colour" || key == "dtype" || key == "sampling") {
        std::string s = yaml::kind(v) == yaml::Kind::kStr ? v.Scalar() : yaml::repr(v);
        if (key == "resize") p.resize = s;
        else if (key == "interpolation") p.interpolation = s;
        else if (key == "colour") p.colour = s;
        else if (key == "dtype") p.dtype = s;
        else p.sampling = s;
        if (yaml::kind(v) != yaml::Kind::kStr && key != "sampling") {
          if (key == "colour" || key == "dtype") throw bad("only uint8 RGB input is supported, got " + yaml::repr(v));
          throw bad("preprocess " + key + " must be a string, got " + yaml::repr(v));
        }
      } else if (key == "mean" || key == "std") {
        if (yaml::kind(v) != yaml::Kind::kList || v.size() != 3)
          throw bad("preprocess mean/std must be 3 values each, std > 0; got " + key + " = " + yaml::repr(v));
        auto& dst = key == "mean" ? p.mean : p.std;
        for (size_t i = 0; i < 3; ++i)
          if (!yaml::as_float(v[i], &dst[i]))
            throw bad("could not convert " + key + " value " + yaml::repr(v[i]) + " to float");
      } else {
        throw bad("unexpected key " + py::str_repr(key));
      }
    }
    int64_t n = 0;
    if (size.IsDefined()) {
      if (!yaml::as_int(size, &n) || n <= 0 || n > 1 << 20)
        throw bad("preprocess size must be a positive integer, got " + yaml::repr(size));
      p.size = static_cast<int>(n);
    }
    if (frames.IsDefined()) {
      if (!yaml::as_int(frames, &n) || n <= 0 || n > 1 << 20)
        throw bad("preprocess frames must be a positive integer, got " + yaml::repr(frames));
      p.frames = static_cast<int>(n);
    }
    try {
      p.validate();
    } catch (const InputError& e) {
      throw bad(e.what());
    }
    return p;
  }

  TokenizerSpec tokenizer(const YAML::Node& node) const {
    auto bad = [&](const std::string& why) {
      return BundleError(where_ + ": bad tokenizer section (" + why + "); needs kind, vocab, max_length");
    };
    TokenizerSpec t;
    YAML::Node kind = yaml::get(node, "kind"), vocab = yaml::get(node, "vocab"),
               lowercase = yaml::get(node, "lowercase"), max_length = yaml::get(node, "max_length");
    if (!kind.IsDefined()) throw bad("missing key 'kind'");
    t.kind = yaml::kind(kind) == yaml::Kind::kStr ? kind.Scalar() : yaml::repr(kind);
    if (!vocab.IsDefined()) throw bad("missing key 'vocab'");
    try {
      t.vocab = inside(vocab, "tokenizer vocab");
    } catch (const BundleError& e) {
      throw bad(e.what());
    }
    t.lowercase = lowercase.IsDefined() ? yaml::truthy(lowercase) : true;
    if (!max_length.IsDefined()) throw bad("missing key 'max_length'");
    int64_t n = 0;
    double f = 0;
    if (yaml::as_int(max_length, &n)) {
    } else if (yaml::kind(max_length) == yaml::Kind::kFloat && yaml::as_float(max_length, &f) && std::abs(f) < 1e9) {
      n = static_cast<int64_t>(f);
    } else {
      throw bad("max_length " + yaml::repr(max_length) + " is not an integer");
    }
    if (n < -(1 << 30) || n > (1 << 30)) throw bad("max_length " + std::to_string(n) + " is out of range");
    t.max_length = static_cast<int>(n);
    return t;
  }

  std::vector<TensorSpec> tensor_specs(const YAML::Node& items, const std::string& where) const {
    if (yaml::kind(items) != yaml::Kind::kList || items.size() == 0)
      throw BundleError(where + " must be a non-empty list");
    std::vector<TensorSpec> out;
    for (const auto& it : items) {
      YAML::Node name = yaml::get(it, "name"), dtype = yaml::get(it, "dtype"), shape = yaml::get(it, "shape");
      if (yaml::kind(it) != yaml::Kind::kDict || !name.IsDefined() || !dtype.IsDefined() || !shape.IsDefined())
        throw BundleError(where + ": each entry needs name, dtype and shape, got " + yaml::repr(it));
      TensorSpec t;
      t.name = yaml::kind(name) == yaml::Kind::kStr ? name.Scalar() : yaml::repr(name);
      t.dtype = yaml::kind(dtype) == yaml::Kind::kStr ? dtype.Scalar() : yaml::repr(dtype);
      if (yaml::kind(shape) != yaml::Kind::kList)
        throw BundleError(where + ": shape of " + t.name + " must be a list, got " + yaml::repr(shape));
      for (const auto& d : shape) {
        Dim dim;
        int64_t v;
        if (yaml::as_int(d, &v) && v >= 0) dim.value = v;
        else dim.symbol = yaml::kind(d) == yaml::Kind::kStr ? d.Scalar() : yaml::repr(d);
        t.shape.push_back(dim);
      }
      out.push_back(std::move(t));
    }
    return out;
  }

  Bundle build(const YAML::Node& m, std::string manifest_sha256) const {
    Bundle b;
    b.root_ = root_;
    b.sha256_ = std::move(manifest_sha256);
    b.family_ = yaml::get(m, "family").Scalar();
    b.flavour_ = yaml::get(m, "flavour").Scalar();
    YAML::Node name = yaml::get(m, "name");
    b.name_ = !name.IsDefined() ? root_.filename().string()
              : yaml::kind(name) == yaml::Kind::kStr ? name.Scalar() : yaml::repr(name);
    YAML::Node pre = yaml::get(m, "preprocess");
    if (!pre.IsDefined()) throw BundleError(where_ + ": bad preprocess section: 'preprocess' is missing");
    b.preprocess_ = preprocess(pre);
    b.tokenizer_ = tokenizer(yaml::get(m, "tokenizer"));
    YAML::Node graphs = yaml::get(m, "graphs");
    for (const char* g : kGraphs) {
      YAML::Node spec = yaml::get(graphs, g);
      if (yaml::kind(spec) != yaml::Kind::kDict) throw BundleError(where_ + ": graphs." + g + " is missing");
      GraphSpec gs;
      gs.name = g;
      gs.path = inside(yaml::get(spec, "file"), std::string("graphs.") + g + ".file");
      gs.inputs = tensor_specs(yaml::get(spec, "inputs"), where_ + ": graphs." + g + ".inputs");
      gs.outputs = tensor_specs(yaml::get(spec, "outputs"), where_ + ": graphs." + g + ".outputs");
      b.graphs_.push_back(std::move(gs));
    }
    YAML::Node ops = yaml::get(m, "custom_ops");
    if (yaml::kind(ops) == yaml::Kind::kList) {
      for (const auto& it : ops) {
        CustomOpSpec op;
        YAML::Node domain = yaml::get(it, "domain"), version = yaml::get(it, "version"), names = yaml::get(it, "ops");
        if (yaml::kind(domain) == yaml::Kind::kStr) op.domain = domain.Scalar();
        yaml::as_int(version, &op.version);
        if (yaml::kind(names) == yaml::Kind::kList)
          for (const auto& n : names) op.ops.push_back(n.IsScalar() ? n.Scalar() : yaml::repr(n));
        b.custom_ops_.push_back(std::move(op));
      }
    } else if (yaml::truthy(ops)) {
      b.custom_ops_.push_back(CustomOpSpec{});  // Python: list(...) of something non-empty
    }
    return b;
  }

 private:
  fs::path root_, root_resolved_;
  std::string where_;
};

std::string TensorSpec::str() const {
  std::string s = dtype + " [";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + shape[i].str();
  return s + "]";
}

const GraphSpec& Bundle::graph(const std::string& name) const {
  for (const auto& g : graphs_)
    if (g.name == name) return g;
  throw BundleError("bundle " + name_ + " has no graph named '" + name + "' (graphs: video, text, scorer)");
}

Bundle Bundle::load(const fs::path& path, bool verify) {
  fs::path root = strip_trailing_separator(expand_user(path));
  std::error_code ec;
  if (fs::is_regular_file(root, ec) && root.filename() == kManifest) root = root.parent_path();
  if (root.empty()) root = ".";
  const fs::path mpath = root / kManifest;
  if (!fs::is_directory(root, ec)) throw BundleError("bundle directory " + root.string() + " does not exist");
  if (!fs::is_regular_file(mpath, ec))
    throw BundleError(root.string() + " is not a bundle: " + kManifest + " is missing");
  const std::string where = mpath.string();
  const std::string raw = read_file(mpath);
  YAML::Node m;
  try {
    m = YAML::Load(raw);
    yaml::check_safe(m);
  } catch (const YAML::Exception& e) {
    throw BundleError(where + ": not valid YAML: " + e.what());
  } catch (const std::runtime_error& e) {
    throw BundleError(where + ": not valid YAML: " + e.what());
  }
  if (yaml::kind(m) != yaml::Kind::kDict) throw BundleError(where + ": expected a mapping at the top level");
  YAML::Node format = yaml::get(m, "format");
  if (yaml::kind(format) != yaml::Kind::kStr || format.Scalar() != kFormat)
    throw BundleError(where + ": format is " + yaml::repr(format) + ", expected " + py::str_repr(kFormat));
  YAML::Node version = yaml::get(m, "format_version");
  int64_t v = 0;
  if (!yaml::as_int(version, &v) || v != kFormatVersion)
    throw BundleError(where + ": format_version " + yaml::repr(version) + " is not supported (this finsta-rt reads " +
                      std::to_string(kFormatVersion) + "); re-export the bundle or upgrade finsta-rt");
  YAML::Node family = yaml::get(m, "family"), flavour = yaml::get(m, "flavour");
  if (yaml::kind(family) == yaml::Kind::kMissing) throw BundleError(where + ": family is missing");
  if (yaml::kind(family) != yaml::Kind::kStr || !plain_name(family.Scalar()))
    throw BundleError(where + ": family must be a plain name (letters, digits, '_', '.', '-'; at most 64), got " +
                      value_kind(family));
  if (yaml::kind(flavour) != yaml::Kind::kStr || !one_of(flavour.Scalar(), kFlavours))
    throw BundleError(where + ": flavour " + yaml::repr(flavour) + " is not one of " + tuple_repr(kFlavours));
  YAML::Node files = yaml::get(m, "files");
  if (yaml::kind(files) != yaml::Kind::kDict || files.size() == 0)
    throw BundleError(where + ": 'files' must map each file to its sha256");

  BundleLoader loader(root, where);
  Bundle bundle = loader.build(m, sha256_hex(raw.data(), raw.size()));

  std::vector<std::pair<fs::path, std::string>> listed;  // in manifest order
  std::set<fs::path> listed_set;
  for (const auto& it : files) {
    fs::path full = loader.inside(it.first, "files entry");
    std::string digest = it.second.IsScalar() ? it.second.Scalar() : yaml::repr(it.second);
    listed.emplace_back(full, digest);
    listed_set.insert(full);
    bundle.files_[it.first.Scalar()] = digest;
  }
  for (const auto& g : bundle.graphs_)
    if (!listed_set.count(g.path))
      throw BundleError(where + ": graph file " + g.path.filename().string() + " has no sha256 in 'files'");
  if (!listed_set.count(bundle.tokenizer_.vocab))
    throw BundleError(where + ": tokenizer vocab " + bundle.tokenizer_.vocab.filename().string() +
                      " has no sha256 in 'files'");
  if (verify) {
    for (const auto& [full, digest] : listed) {
      if (!fs::is_regular_file(full, ec)) throw BundleError("bundle file " + full.string() + " is missing");
      const std::string actual = sha256_file(full);
      if (actual != digest)
        throw BundleError("bundle file " + full.string() + " fails its sha256 check (expected " + digest + ", got " +
                          actual + "): the file was altered or truncated");
    }
  }
  return bundle;
}

}  // namespace finsta_rt
