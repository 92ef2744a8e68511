// Reading yaml-cpp nodes as the Python runtime's yaml.safe_load sees them: plain scalars are
// resolved to None / bool / int / float / str by the YAML 1.1 rules PyYAML uses, values are
// written in Python repr for error messages, and tags that would construct objects are refused.
#pragma once

#include <cstdint>
#include <string>

#include <yaml-cpp/yaml.h>

namespace finsta_rt::yaml {

enum class Kind { kMissing, kNone, kBool, kInt, kFloat, kStr, kTimestamp, kList, kDict };

Kind kind(const YAML::Node& node);
// The entry `key` of a mapping node; an undefined node when absent or when `map` is no mapping.
YAML::Node get(const YAML::Node& map, const std::string& key);
// Python's type name of the value: int, str, date, datetime, list, dict, NoneType...
std::string type_name(const YAML::Node& node);
// Python repr of the value: 'text', 12, 1.5, None, True, [..], {..}.
std::string repr(const YAML::Node& node);
// Python truthiness (bool(x)).
bool truthy(const YAML::Node& node);
// The value as an integer when it is a YAML int; false otherwise (also on overflow).
bool as_int(const YAML::Node& node, int64_t* out);
// float(x) of Python for ints, floats, bools and numeric strings; false when that would raise.
bool as_float(const YAML::Node& node, double* out);
// Throws std::runtime_error naming the first tag that safe_load would refuse, or an impossible timestamp.
void check_safe(const YAML::Node& node);
}  // namespace finsta_rt::yaml
