// Model bundles: a directory with bundle.yaml, ONNX graphs and tokenizer files (docs/bundle.md).
// Loading bounds bundle.yaml (size, nesting, value count, no aliases), checks every key's type and
// shape, the format version, that every listed file stays inside the bundle directory and matches
// its sha256, and refuses YAML tags that would construct objects, exactly as finsta_rt/bundle.py
// does, with the same messages.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "finsta_rt/export.h"
#include "finsta_rt/preprocess.h"

namespace finsta_rt {

// One dimension of a declared tensor shape: a fixed size, or a symbol such as "B" or "T*9".
struct FINSTA_RT_API Dim {
  int64_t value = -1;  // >= 0 when fixed
  std::string symbol;  // set when symbolic
  bool fixed() const { return value >= 0; }
  std::string str() const { return fixed() ? std::to_string(value) : symbol; }
};

struct FINSTA_RT_API TensorSpec {
  std::string name;
  std::string dtype;
  std::vector<Dim> shape;
  std::string str() const;  // "float32 [B, 4, 32]"
};

struct FINSTA_RT_API GraphSpec {
  std::string name;            // "video", "text" or "scorer"
  std::filesystem::path path;  // resolved, inside the bundle
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

struct FINSTA_RT_API TokenizerSpec {
  std::string kind;             // "wordpiece" or "clip_bpe"
  std::filesystem::path vocab;  // resolved, inside the bundle: vocab.txt (wordpiece), vocab.json (clip_bpe)
  bool lowercase = true;
  int max_length = 0;
  std::filesystem::path merges;  // clip_bpe: merges.txt, resolved; empty for wordpiece
};

struct FINSTA_RT_API CustomOpSpec {
  std::string domain;
  int64_t version = 0;
  std::vector<std::string> ops;
};

class FINSTA_RT_API Bundle {
 public:
  static constexpr const char* kManifest = "bundle.yaml";
  static constexpr const char* kFormat = "finsta-bundle";
  static constexpr int kFormatVersion = 1;

  // Loads `path` (the bundle directory or its bundle.yaml). With `verify`, every file listed in
  // `files` must exist and match its sha256. Throws BundleError naming the file and the problem.
  static Bundle load(const std::filesystem::path& path, bool verify = true);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path manifest_path() const { return root_ / kManifest; }
  // The family that trained it: any plain name. What the bundle can do is read from its graphs' declared
  // inputs and outputs, never from this name.
  const std::string& family() const { return family_; }
  const std::string& flavour() const { return flavour_; }
  // fp32 | fp16 | int8: of the towers' arithmetic (informational: sessions read the graphs)
  const std::string& precision() const { return precision_; }
  const std::string& name() const { return name_; }
  // sha256 of bundle.yaml: identifies the bundle (the manifest lists every file's hash).
  const std::string& sha256() const { return sha256_; }
  const PreprocessSpec& preprocess() const { return preprocess_; }
  const TokenizerSpec& tokenizer_spec() const { return tokenizer_; }
  // "video", "text" or "scorer"; throws BundleError for another name.
  const GraphSpec& graph(const std::string& name) const;
  // model.finsta.parser: the parser of the text scene graphs a Finsta text graph reads ("rules" when
  // not set); throws BundleError when it is not a string.
  const std::string& text_parser() const;
  const std::vector<CustomOpSpec>& custom_ops() const { return custom_ops_; }
  // Files listed in the manifest, relative name -> sha256.
  const std::map<std::string, std::string>& files() const { return files_; }
  // True for the custom flavour with custom ops listed: sessions need the finsta op library.
  bool requires_op_library() const { return flavour_ == "custom" && !custom_ops_.empty(); }

 private:
  Bundle() = default;
  std::filesystem::path root_;
  std::string family_, flavour_, precision_, name_, sha256_, text_parser_, text_parser_error_;
  PreprocessSpec preprocess_;
  TokenizerSpec tokenizer_;
  std::vector<GraphSpec> graphs_;
  std::vector<CustomOpSpec> custom_ops_;
  std::map<std::string, std::string> files_;
  friend class BundleLoader;
};

}  // namespace finsta_rt
