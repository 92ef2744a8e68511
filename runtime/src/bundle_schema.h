// The bounds and type checks of bundle.yaml, ported from finsta_rt/bundle.py (read_manifest, _kind,
// _Schema): the same limits, the same order of checks and the same messages (docs/bundle.md).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "finsta_rt/bundle.h"

namespace finsta_rt::schema {

// A real bundle.yaml is a few KB, about 6 levels deep and 200-500 values (bundle.py MAX_*).
constexpr int64_t kMaxManifestBytes = 1 << 20;
constexpr int kMaxNesting = 32;
constexpr int kMaxNodes = 10000;
constexpr int64_t kMaxDim = 2147483647;

// bundle.py read_manifest: the parsed bundle.yaml (its bytes in *raw); BundleError for a file too big,
// unreadable, not YAML, nested too deep, with too many values, holding aliases, or not a mapping.
YAML::Node read_manifest(const std::filesystem::path& path, std::string* raw);

// bundle.py _kind: a value for a message, its type and the value itself if short ("int 12", "a list").
std::string value_kind(const YAML::Node& node);

// Python's repr of a list of str: ['a', 'b'].
std::string str_list_repr(const std::vector<std::string>& items);

// bundle.py _Schema: each failure is a BundleError "<where>: <key> must be <what>, got <kind>".
class Schema {
 public:
  explicit Schema(std::string where) : where_(std::move(where)) {}
  const std::string& where() const { return where_; }

  [[noreturn]] void error(const std::string& message) const;  // "<where>: <message>"
  [[noreturn]] void fail(const std::string& key, const std::string& what, const YAML::Node& v) const;
  // A mapping with string keys, holding `required`, and (when `allowed` is given) only those keys.
  void mapping(const YAML::Node& v, const std::string& key, const std::vector<std::string>& required = {},
               const std::vector<std::string>* allowed = nullptr) const;
  // A non-empty string; `ok` (a pattern) must accept it, else the failure says `what`.
  std::string string(const YAML::Node& v, const std::string& key, bool (*ok)(const std::string&) = nullptr,
                     const std::string& what = "a non-empty string") const;
  std::string choice(const YAML::Node& v, const std::string& key, const std::vector<std::string>& choices) const;
  int64_t integer(const YAML::Node& v, const std::string& key, int64_t lo = 0, int64_t hi = kMaxDim) const;
  bool boolean(const YAML::Node& v, const std::string& key) const;
  void items(const YAML::Node& v, const std::string& key, bool nonempty = true) const;
  std::vector<TensorSpec> tensors(const YAML::Node& v, const std::string& key) const;

 private:
  std::string where_;
};

}  // namespace finsta_rt::schema
