// Bundle loading: the checks, their order and their messages follow finsta_rt/bundle.py (docs/bundle.md);
// the bounds of bundle.yaml and the type checks of its values are in bundle_schema.cc.
#include "finsta_rt/bundle.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "bundle_schema.h"
#include "finsta_rt/errors.h"
#include "finsta_rt/sha256.h"
#include "py_format.h"
#include "yaml_values.h"

namespace fs = std::filesystem;

namespace finsta_rt {
namespace {

using yaml::Kind;

const std::vector<std::string> kFlavours = {"custom", "portable", "flat"};  // flat: standard ONNX only
const std::vector<std::string> kPrecisions = {"fp32", "fp16", "int8"};
const std::vector<std::string> kGraphs = {"video", "text", "scorer"};

// A family is any plain name (bundle.py PLAIN_NAME): [A-Za-z0-9][A-Za-z0-9_.-]{0,63}. What a bundle can
// do is read from its graphs' declared inputs and outputs, never from its family.
bool plain_name(const std::string& s) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (s.empty() || s.size() > 64 || !alnum(s[0])) return false;
  for (char c : s)
    if (!alnum(c) && c != '_' && c != '.' && c != '-') return false;
  return true;
}

bool is_sha256(const std::string& s) {  // bundle.py SHA256: [0-9a-f]{64}
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// Python's repr of a declared shape (a list of ints and strs): ['B', 4, 'K'].
std::string shape_repr(const std::vector<Dim>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + (shape[i].fixed() ? std::to_string(shape[i].value) : py::str_repr(shape[i].symbol));
  return s + "]";
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

// Python's Path.name: the last part, "." parts dropped ("" for "." and "/").
std::string path_name(const fs::path& p) {
  std::string name;
  for (const auto& part : p)
    if (!part.empty() && part != "." && part != p.root_path()) name = part.string();
  return name;
}

bool is_relative_to(const fs::path& full, const fs::path& root) {
  auto f = full.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++f) {
    if (r->empty()) continue;  // a trailing separator of root
    if (f == full.end() || *f != *r) return false;
  }
  return true;
}

}  // namespace

// Everything bundle.py does in Bundle.__init__, in the same order.
class BundleLoader {
 public:
  BundleLoader(fs::path root, std::string where) : root_(std::move(root)), sc_(std::move(where)) {
    std::error_code ec;
    root_resolved_ = fs::weakly_canonical(fs::absolute(root_, ec), ec);
  }

  // bundle.py _inside: root / rel if it stays inside root (no absolute path, no "..", no symlink out).
  fs::path inside(const std::string& rel, const std::string& what) const {
    if (rel.empty() || rel.find('\0') != std::string::npos)
      sc_.error(what + " must be a relative file name, got " + py::str_repr(rel));
    fs::path p(rel);
    bool dotdot = false;
    for (const auto& part : p) dotdot = dotdot || part == "..";
    if (p.is_absolute() || dotdot) sc_.error(what + " " + py::str_repr(rel) + " leaves the bundle directory");
    std::error_code ec;
    fs::path full = fs::weakly_canonical(fs::absolute(root_ / p, ec), ec);
    if (ec || !is_relative_to(full, root_resolved_))
      sc_.error(what + " " + py::str_repr(rel) + " resolves outside the bundle directory");
    return full;
  }

  // bundle.py _preprocess: types first, then Preprocess's own checks (PreprocessSpec::validate).
  PreprocessSpec preprocess(const YAML::Node& v) const {
    static const std::vector<std::string> kKnown = {"size",   "resize", "interpolation", "mean",    "std",
                                                    "colour", "dtype",  "frames",        "sampling"};
    sc_.mapping(v, "preprocess", {"size", "frames"}, &kKnown);
    PreprocessSpec p;
    p.size = static_cast<int>(sc_.integer(yaml::get(v, "size"), "preprocess.size", 1, 1 << 16));
    p.frames = static_cast<int>(sc_.integer(yaml::get(v, "frames"), "preprocess.frames", 1, 1 << 16));
    const std::pair<const char*, std::string*> strings[] = {{"resize", &p.resize},
                                                            {"interpolation", &p.interpolation},
                                                            {"colour", &p.colour},
                                                            {"dtype", &p.dtype},
                                                            {"sampling", &p.sampling}};
    for (const auto& [k, field] : strings) {
      const YAML::Node s = yaml::get(v, k);
      if (s.IsDefined()) *field = sc_.string(s, std::string("preprocess.") + k);
    }
    for (const char* k : {"mean", "std"}) {
      const YAML::Node s = yaml::get(v, k);
      if (!s.IsDefined()) continue;
      bool ok = yaml::kind(s) == Kind::kList && s.size() == 3;
      auto& dst = std::string(k) == "mean" ? p.mean : p.std;
      for (size_t i = 0; ok && i < 3; ++i) {
        const Kind e = yaml::kind(s[i]);
        // bundle.py _finite: a value float() cannot hold (10**400, 1.0e+400) or that is inf/NaN is refused here
        ok = (e == Kind::kInt || e == Kind::kFloat) && yaml::as_float(s[i], &dst[i]) && std::isfinite(dst[i]);
      }
      if (!ok) sc_.fail(std::string("preprocess.") + k, "a list of 3 numbers", s);
    }
    try {
      p.validate();
    } catch (const InputError& e) {
      sc_.error(std::string("preprocess: ") + e.what());
    }
    return p;
  }

  // bundle.py _tokenizer: kind (default wordpiece), its files inside the bundle, max_length. The merges file of
  // kind clip_bpe is checked and kept in merges_ and TokenizerSpec::merges (its sha256 is checked in Bundle::load).
  TokenizerSpec tokenizer(const YAML::Node& v) {
    static const std::vector<std::string> kKnown = {"kind", "vocab", "merges", "lowercase", "max_length"};
    sc_.mapping(v, "tokenizer", {"vocab", "max_length"}, &kKnown);
    TokenizerSpec t;
    const YAML::Node kind = yaml::get(v, "kind");
    t.kind = kind.IsDefined() ? sc_.string(kind, "tokenizer.kind") : "wordpiece";
    if (t.kind != "wordpiece" && t.kind != "clip_bpe")  // finsta_rt.tokenizer.TOKENIZER_KINDS
      sc_.error("tokenizer.kind " + py::str_repr(t.kind) + " is not one of wordpiece, clip_bpe");
    const YAML::Node lowercase = yaml::get(v, "lowercase");
    t.lowercase = lowercase.IsDefined() ? sc_.boolean(lowercase, "tokenizer.lowercase") : true;
    const YAML::Node merges = yaml::get(v, "merges");
    if (t.kind == "clip_bpe") {
      if (!merges.IsDefined()) sc_.error("tokenizer.merges is missing (kind clip_bpe reads a vocab and merges)");
      merges_ = inside(sc_.string(merges, "tokenizer.merges"), "tokenizer.merges");
      if (!t.lowercase) sc_.error("tokenizer.lowercase must be true for kind clip_bpe (CLIP lower-cases)");
      t.merges = merges_;
    } else if (merges.IsDefined()) {
      sc_.error("tokenizer.merges is only for kind clip_bpe, not " + t.kind);
    }
    t.vocab = inside(sc_.string(yaml::get(v, "vocab"), "tokenizer.vocab"), "tokenizer.vocab");
    t.max_length = static_cast<int>(sc_.integer(yaml::get(v, "max_length"), "tokenizer.max_length", 1, 1 << 20));
    return t;
  }

  // bundle.py _check_io: what the runtime feeds each graph must be what the graph declares.
  void check_io(const std::vector<GraphSpec>& graphs) const {
    auto find = [](const std::vector<TensorSpec>& ts, const std::string& name) -> const TensorSpec* {
      for (const auto& t : ts)
        if (t.name == name) return &t;
      return nullptr;
    };
    const GraphSpec &video = graphs[0], &text = graphs[1], &scorer = graphs[2];
    const TensorSpec* frames = find(video.inputs, "frames");
    if (!frames || frames->dtype != "uint8" || frames->shape.size() != 5)
      sc_.error("graphs.video.inputs must hold frames (uint8, [B, T, S, S, 3])");
    const std::set<std::string> slots = {"slot_adj", "slot_box", "slot_mask"};
    std::set<std::string> names, extra;
    for (const auto& t : video.inputs) {
      names.insert(t.name);
      if (t.name != "frames") extra.insert(t.name);
    }
    if (!extra.empty() && extra != slots)
      sc_.error("graphs.video.inputs " + schema::str_list_repr(std::vector<std::string>(names.begin(), names.end())) +
                ": this finsta-rt feeds frames, and optionally all of " +
                schema::str_list_repr(std::vector<std::string>(slots.begin(), slots.end())));
    if (const TensorSpec* mask = find(video.inputs, "slot_mask")) {
      for (size_t i = 1; i < 3 && i < mask->shape.size(); ++i)
        if (!mask->shape[i].fixed())
          sc_.error("graphs.video.inputs slot_mask needs fixed T and K dims, got " + shape_repr(mask->shape));
    }
    if (!find(text.inputs, "input_ids")) sc_.error("graphs.text.inputs must hold input_ids");
    if (const TensorSpec* nt = find(text.inputs, "node_type"))
      if (nt->shape.size() < 2 || !nt->shape[1].fixed())
        sc_.error("graphs.text.inputs node_type needs a fixed node count, got " + shape_repr(nt->shape));
    if (!find(video.outputs, "video_embedding")) sc_.error("graphs.video.outputs must hold video_embedding");
    if (!find(text.outputs, "text_embedding")) sc_.error("graphs.text.outputs must hold text_embedding");
    for (size_t i = 0; i < scorer.inputs.size(); ++i) {
      const std::string& name = scorer.inputs[i].name;
      const bool from_video = name.rfind("video_", 0) == 0;  // how Model.score_parts feeds the scorer
      if (!find(from_video ? video.outputs : text.outputs, name))
        sc_.error("graphs.scorer.inputs[" + std::to_string(i) + "].name " + py::str_repr(name) +
                  " is not an output of graphs." + (from_video ? "video" : "text"));
    }
  }

  std::vector<CustomOpSpec> custom_ops(const YAML::Node& ops) const {
    std::vector<CustomOpSpec> out;
    if (!yaml::truthy(ops)) return out;  // Python: manifest.get("custom_ops") or []
    sc_.items(ops, "custom_ops", false);
    for (size_t i = 0; i < ops.size(); ++i) {
      const std::string k = "custom_ops[" + std::to_string(i) + "]";
      const YAML::Node op = ops[i];
      sc_.mapping(op, k, {"domain", "version", "ops"});
      CustomOpSpec c;
      c.domain = sc_.string(yaml::get(op, "domain"), k + ".domain");
      c.version = sc_.integer(yaml::get(op, "version"), k + ".version", 1);
      const YAML::Node names = yaml::get(op, "ops");
      sc_.items(names, k + ".ops", false);
      for (size_t j = 0; j < names.size(); ++j)
        c.ops.push_back(sc_.string(names[j], k + ".ops[" + std::to_string(j) + "]"));
      const YAML::Node required = yaml::get(op, "required");
      if (required.IsDefined()) sc_.boolean(required, k + ".required");
      out.push_back(std::move(c));
    }
    return out;
  }

  Bundle build(const YAML::Node& m, std::string manifest_sha256) {
    sc_.mapping(m, "", {"format", "format_version", "family", "flavour", "preprocess", "tokenizer", "graphs", "files"});
    const YAML::Node format = yaml::get(m, "format");
    if (yaml::kind(format) != Kind::kStr || format.Scalar() != Bundle::kFormat)
      sc_.error("format is " + yaml::repr(format) + ", expected " + py::str_repr(Bundle::kFormat));
    const YAML::Node version = yaml::get(m, "format_version");
    int64_t v = 0;
    if (!yaml::as_int(version, &v) || v != Bundle::kFormatVersion)
      sc_.error("format_version " + yaml::repr(version) + " is not supported (this finsta-rt reads " +
                std::to_string(Bundle::kFormatVersion) + "); re-export the bundle or upgrade finsta-rt");
    Bundle b;
    b.root_ = root_;
    b.sha256_ = std::move(manifest_sha256);
    b.family_ = sc_.string(yaml::get(m, "family"), "family", plain_name,
                           "a plain name (letters, digits, '_', '.', '-'; at most 64)");
    b.flavour_ = sc_.choice(yaml::get(m, "flavour"), "flavour", kFlavours);
    const YAML::Node precision = yaml::get(m, "precision");  // optional: bundles written before it are fp32
    b.precision_ = precision.IsDefined() ? sc_.choice(precision, "precision", kPrecisions) : "fp32";
    const YAML::Node name = yaml::get(m, "name");
    b.name_ = name.IsDefined() ? sc_.string(name, "name") : path_name(root_);
    if (b.name_.empty()) sc_.error("name must be a non-empty string, got str ''");  // the directory has no name
    for (const char* k : {"exporter", "model"}) {
      const YAML::Node s = yaml::get(m, k);
      if (s.IsDefined()) sc_.mapping(s, k);
    }
    // model.finsta.parser: the text scene-graph parser of a text graph that takes scene graphs
    // (read when one is run, as finsta_rt.model.Model.text_inputs does).
    b.text_parser_ = "rules";
    const YAML::Node finsta = yaml::get(yaml::get(m, "model"), "finsta");
    if (yaml::kind(finsta) == Kind::kDict) {
      const YAML::Node parser = yaml::get(finsta, "parser");
      if (yaml::kind(parser) == Kind::kStr)
        b.text_parser_ = parser.Scalar();
      else if (parser.IsDefined())
        b.text_parser_error_ = b.manifest_path().string() + ": model.finsta.parser must be a parser name, got " +
                               schema::value_kind(parser);
    }
    const YAML::Node created = yaml::get(m, "created");
    if (created.IsDefined() && yaml::kind(created) != Kind::kStr && yaml::kind(created) != Kind::kTimestamp)
      sc_.fail("created", "a timestamp", created);
    b.preprocess_ = preprocess(yaml::get(m, "preprocess"));
    b.tokenizer_ = tokenizer(yaml::get(m, "tokenizer"));
    const YAML::Node graphs = yaml::get(m, "graphs");
    sc_.mapping(graphs, "graphs", kGraphs);
    for (const auto& g : kGraphs) {
      const std::string key = "graphs." + g;
      const YAML::Node spec = yaml::get(graphs, g);
      sc_.mapping(spec, key, {"file", "inputs", "outputs"});
      GraphSpec gs;
      gs.name = g;
      gs.path = inside(sc_.string(yaml::get(spec, "file"), key + ".file"), key + ".file");
      gs.inputs = sc_.tensors(yaml::get(spec, "inputs"), key + ".inputs");
      gs.outputs = sc_.tensors(yaml::get(spec, "outputs"), key + ".outputs");
      b.graphs_.push_back(std::move(gs));
    }
    check_io(b.graphs_);
    b.custom_ops_ = custom_ops(yaml::get(m, "custom_ops"));
    if (b.flavour_ == "flat") {
      std::vector<std::string> names;
      for (const auto& op : b.custom_ops_) names.insert(names.end(), op.ops.begin(), op.ops.end());
      if (!names.empty()) {
        std::sort(names.begin(), names.end());
        std::string list = "[";
        for (size_t i = 0; i < names.size(); ++i) list += (i ? ", " : "") + py::str_repr(names[i]);
        sc_.error("flavour flat holds standard ONNX only, but custom_ops lists " + list + "]");
      }
    }
    const YAML::Node files = yaml::get(m, "files");
    sc_.mapping(files, "files");
    if (files.size() == 0) sc_.error("'files' must map each file to its sha256");
    for (const auto& it : files) {
      const std::string& rel = it.first.Scalar();
      const fs::path full = inside(rel, "files entry");
      const std::string digest = sc_.string(it.second, "files." + rel, is_sha256, "a sha256 (64 lowercase hex digits)");
      auto [pos, fresh] = listed_index_.emplace(full, listed_.size());
      if (fresh)
        listed_.emplace_back(full, digest);
      else
        listed_[pos->second].second = digest;  // a Python dict keyed by path: the last digest counts
      b.files_[rel] = digest;
    }
    return b;
  }

  // The files entries by resolved path, in manifest order (bundle.py Bundle.files).
  const std::vector<std::pair<fs::path, std::string>>& listed() const { return listed_; }
  bool is_listed(const fs::path& full) const { return listed_index_.count(full) > 0; }
  [[noreturn]] void error(const std::string& message) const { sc_.error(message); }
  const fs::path& merges() const { return merges_; }  // empty unless tokenizer.kind is clip_bpe

 private:
  fs::path root_, root_resolved_, merges_;
  schema::Schema sc_;
  std::vector<std::pair<fs::path, std::string>> listed_;
  std::map<fs::path, size_t> listed_index_;
};

std::string TensorSpec::str() const {
  std::string s = dtype + " [";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + shape[i].str();
  return s + "]";
}

const std::string& Bundle::text_parser() const {
  if (!text_parser_error_.empty()) throw BundleError(text_parser_error_);
  return text_parser_;
}

const GraphSpec& Bundle::graph(const std::string& name) const {
  for (const auto& g : graphs_)
    if (g.name == name) return g;
  throw BundleError("bundle " + name_ + " has no graph named '" + name + "' (graphs: video, text, scorer)");
}

// bundle.py Bundle.load.
Bundle Bundle::load(const fs::path& path, bool verify) {
  fs::path root = strip_trailing_separator(expand_user(path));
  std::error_code ec;
  if (fs::is_regular_file(root, ec) && root.filename() == kManifest) root = root.parent_path();
  if (root.empty()) root = ".";
  const fs::path mpath = root / kManifest;
  if (!fs::is_directory(root, ec)) throw BundleError("bundle directory " + root.string() + " does not exist");
  if (!fs::is_regular_file(mpath, ec))
    throw BundleError(root.string() + " is not a bundle: " + kManifest + " is missing");
  std::string raw;
  const YAML::Node m = schema::read_manifest(mpath, &raw);
  BundleLoader loader(root, mpath.string());
  Bundle bundle = loader.build(m, sha256_hex(raw.data(), raw.size()));
  for (const auto& g : bundle.graphs_)
    if (!loader.is_listed(g.path))
      loader.error("graph file " + g.path.filename().string() + " has no sha256 in 'files'");
  if (!loader.is_listed(bundle.tokenizer_.vocab))
    loader.error("tokenizer vocab " + bundle.tokenizer_.vocab.filename().string() + " has no sha256 in 'files'");
  if (!loader.merges().empty() && !loader.is_listed(loader.merges()))
    loader.error("tokenizer merges " + loader.merges().filename().string() + " has no sha256 in 'files'");
  if (verify) {
    for (const auto& [full, digest] : loader.listed()) {
      if (!fs::is_regular_file(full, ec)) throw BundleError("bundle file " + full.string() + " is missing");
      if (!std::ifstream(full, std::ios::binary))
        throw BundleError("bundle file " + full.string() + " cannot be read: " + std::strerror(errno));
      const std::string actual = sha256_file(full);
      if (actual != digest)
        throw BundleError("bundle file " + full.string() + " fails its sha256 check (expected " + digest + ", got " +
                          actual + "): the file was altered or truncated");
    }
  }
  return bundle;
}

}  // namespace finsta_rt
