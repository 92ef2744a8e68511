#include "yaml_values.h"

#include "py_format.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <stdexcept>

namespace finsta_rt::yaml {

using py::float_repr;
using py::str_repr;

namespace {

constexpr const char* kCoreTag = "tag:yaml.org,2002:";

// PyYAML's implicit resolvers (yaml/resolver.py, YAML 1.1), written out as small matchers.
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_digit_(char c) { return is_digit(c) || c == '_'; }

bool one_of(const std::string& s, std::initializer_list<const char*> words) {
  for (const char* w : words)
    if (s == w) return true;
  return false;
}

bool is_null(const std::string& s) { return one_of(s, {"~", "null", "Null", "NULL", ""}); }

bool is_bool(const std::string& s) {
  return one_of(s, {"yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on",
                    "On", "ON", "off", "Off", "OFF"});
}

// s[i..] is ([-+]?) skipped by the caller; all characters from i on satisfy `ok`, and there is one.
template <typename Pred>
bool all_from(const std::string& s, size_t i, Pred ok) {
  if (i >= s.size()) return false;
  for (; i < s.size(); ++i)
    if (!ok(s[i])) return false;
  return true;
}

// (?::[0-5]?[0-9])+ from i to the end.
bool sexagesimal_tail(const std::string& s, size_t i, size_t end) {
  if (i >= end) return false;
  while (i < end) {
    if (s[i] != ':') return false;
    ++i;
    auto boundary = [&](size_t j) { return j == end || s[j] == ':'; };
    if (i + 1 < end && s[i] >= '0' && s[i] <= '5' && is_digit(s[i + 1]) && boundary(i + 2))
      i += 2;
    else if (i < end && is_digit(s[i]) && boundary(i + 1))
      i += 1;
    else
      return false;
  }
  return true;
}

size_t skip_sign(const std::string& s) { return !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0; }

bool is_int(const std::string& s) {
  const size_t i = skip_sign(s);
  if (s.compare(i, 2, "0b") == 0) return all_from(s, i + 2, [](char c) { return c == '0' || c == '1' || c == '_'; });
  if (s.compare(i, 2, "0x") == 0)
    return all_from(s, i + 2, [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) || c == '_'; });
  if (i < s.size() && s[i] == '0')
    return i + 1 == s.size() || all_from(s, i + 1, [](char c) { return (c >= '0' && c <= '7') || c == '_'; });
  if (i >= s.size() || s[i] < '1' || s[i] > '9') return false;
  size_t j = i + 1;
  while (j < s.size() && is_digit_(s[j])) ++j;
  return j == s.size() || sexagesimal_tail(s, j, s.size());
}

// ([eE][-+][0-9]+)? from i to the end.
bool exponent_tail(const std::string& s, size_t i) {
  if (i == s.size()) return true;
  if ((s[i] != 'e' && s[i] != 'E') || i + 1 >= s.size() || (s[i + 1] != '+' && s[i + 1] != '-')) return false;
  return all_from(s, i + 2, is_digit);
}

bool is_float(const std::string& s) {
  const size_t i = skip_sign(s);
  if (one_of(s.substr(i), {".inf", ".Inf", ".INF"})) return true;
  if (one_of(s, {".nan", ".NaN", ".NAN"})) return true;
  if (i == 0 && !s.empty() && s[0] == '.') {  // \.[0-9_]+ exponent?
    size_t j = 1;
    while (j < s.size() && is_digit_(s[j])) ++j;
    if (j > 1 && exponent_tail(s, j)) return true;
  }
  if (i >= s.size() || !is_digit(s[i])) return false;
  size_t j = i + 1;
  while (j < s.size() && is_digit_(s[j])) ++j;
  if (j < s.size() && s[j] == '.') {  // [0-9][0-9_]*\.[0-9_]* exponent?
    size_t k = j + 1;
    while (k < s.size() && is_digit_(s[k])) ++k;
    return exponent_tail(s, k);
  }
  // [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
  const size_t dot = s.rfind('.');
  if (dot == std::string::npos || dot < j) return false;
  for (size_t k = dot + 1; k < s.size(); ++k)
    if (!is_digit_(s[k])) return false;
  return sexagesimal_tail(s, j, dot);
}

// PyYAML's timestamp resolver: YYYY-MM-DD, or YYYY-M-D[Tt ]h:mm:ss[.frac][ ][Z|+-h[:mm]]. Fills the fields
// (year, month, day, hour, minute, second, microsecond, tz: 0 none, 1 Z, 2 offset; offset in seconds).
struct Timestamp {
  int v[7] = {0, 0, 0, 0, 0, 0, 0};
  bool date_only = true;
  int tz = 0;
  long offset = 0;
};

bool parse_timestamp(const std::string& s, Timestamp* t) {
  size_t i = 0;
  auto digits = [&](int lo, int hi, int* out) {
    int n = 0, v = 0;
    while (i < s.size() && is_digit(s[i]) && n < hi) v = v * 10 + (s[i++] - '0'), ++n;
    *out = v;
    return n >= lo;
  };
  auto lit = [&](char c) { return i < s.size() && s[i] == c ? (++i, true) : false; };
  if (!digits(4, 4, &t->v[0]) || !lit('-')) return false;
  const size_t month_at = i;
  if (digits(2, 2, &t->v[1]) && lit('-') && digits(2, 2, &t->v[2]) && i == s.size()) return true;
  i = month_at;
  if (!digits(1, 2, &t->v[1]) || !lit('-') || !digits(1, 2, &t->v[2])) return false;
  t->date_only = false;
  if (!lit('T') && !lit('t')) {
    const size_t before = i;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    if (i == before) return false;
  }
  if (!digits(1, 2, &t->v[3]) || !lit(':') || !digits(2, 2, &t->v[4]) || !lit(':') || !digits(2, 2, &t->v[5]))
    return false;
  if (lit('.')) {
    std::string frac;
    while (i < s.size() && is_digit(s[i])) frac += s[i++];
    frac = frac.substr(0, 6);
    while (frac.size() < 6) frac += '0';
    t->v[6] = std::stoi(frac);
  }
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  if (i == s.size()) return s.back() != ' ' && s.back() != '\t';  // trailing blanks: no timezone follows
  if (lit('Z')) {
    t->tz = 1;
    return i == s.size();
  }
  const bool neg = s[i] == '-';
  if (!lit('-') && !lit('+')) return false;
  int h = 0, m = 0;
  if (!digits(1, 2, &h)) return false;
  if (lit(':') && !digits(2, 2, &m)) return false;
  t->tz = 2;
  t->offset = (neg ? -1L : 1L) * (h * 3600L + m * 60L);
  return i == s.size();
}

// Why Python's datetime refuses the fields ("" when it builds them): PyYAML lets that ValueError through.
std::string timestamp_error(const Timestamp& t) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const int y = t.v[0], mo = t.v[1];
  if (y < 1) return "year " + std::to_string(y) + " is out of range";
  if (mo < 1 || mo > 12) return "month must be in 1..12";
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (t.v[2] < 1 || t.v[2] > kDays[mo - 1] + (mo == 2 && leap)) return "day is out of range for month";
  if (t.v[3] > 23) return "hour must be in 0..23";
  if (t.v[4] > 59) return "minute must be in 0..59";
  if (t.v[5] > 59) return "second must be in 0..59";
  if (t.tz == 2 && (t.offset <= -86400 || t.offset >= 86400))
    return "offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24)";
  return "";
}

// Python's repr of the datetime.date / datetime.datetime PyYAML builds.
std::string timestamp_repr(const Timestamp& t) {
  auto n = [](int v) { return std::to_string(v); };
  if (t.date_only) return "datetime.date(" + n(t.v[0]) + ", " + n(t.v[1]) + ", " + n(t.v[2]) + ")";
  std::string s =
      "datetime.datetime(" + n(t.v[0]) + ", " + n(t.v[1]) + ", " + n(t.v[2]) + ", " + n(t.v[3]) + ", " + n(t.v[4]);
  if (t.v[5] || t.v[6]) s += ", " + n(t.v[5]);
  if (t.v[6]) s += ", " + n(t.v[6]);
  if (t.tz == 1 || (t.tz == 2 && t.offset == 0)) {
    s += ", tzinfo=datetime.timezone.utc";
  } else if (t.tz == 2) {
    const long days = t.offset < 0 ? -1 : 0, seconds = t.offset - days * 86400;
    s += ", tzinfo=datetime.timezone(datetime.timedelta(" + (days ? "days=-1, " : std::string()) +
         "seconds=" + std::to_string(seconds) + "))";
  }
  return s + ")";
}

std::string core_tag_name(const std::string& tag) {
  const std::string prefix = kCoreTag;
  return tag.compare(0, prefix.size(), prefix) == 0 ? tag.substr(prefix.size()) : std::string();
}

Kind scalar_kind(const YAML::Node& node) {
  const std::string& tag = node.Tag();
  const std::string& s = node.Scalar();
  if (tag == "!") return Kind::kStr;  // quoted: always a string
  std::string core = core_tag_name(tag);
  if (core == "str") return Kind::kStr;
  if (core == "int") return Kind::kInt;
  if (core == "float") return Kind::kFloat;
  if (core == "bool") return Kind::kBool;
  if (core == "null") return Kind::kNone;
  if (core == "timestamp") return Kind::kTimestamp;
  if (is_null(s)) return Kind::kNone;
  if (is_bool(s)) return Kind::kBool;
  if (is_int(s)) return Kind::kInt;
  if (is_float(s)) return Kind::kFloat;
  Timestamp t;
  if (parse_timestamp(s, &t)) return Kind::kTimestamp;
  return Kind::kStr;
}

bool parse_int(std::string s, int64_t* out) {
  std::string t;
  for (char c : s)
    if (c != '_') t += c;
  bool neg = false;
  size_t i = 0;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) neg = t[i++] == '-';
  std::string body = t.substr(i);
  if (body.find(':') != std::string::npos) {  // sexagesimal: 1:30 = 90
    int64_t v = 0;
    size_t pos = 0;
    while (pos <= body.size()) {
      size_t next = body.find(':', pos);
      std::string part = body.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
      int64_t d = 0;
      auto r = std::from_chars(part.data(), part.data() + part.size(), d);
      if (r.ec != std::errc() || r.ptr != part.data() + part.size()) return false;
      if (v > (INT64_MAX - d) / 60) return false;
      v = v * 60 + d;
      if (next == std::string::npos) break;
      pos = next + 1;
    }
    *out = neg ? -v : v;
    return true;
  }
  int base = 10;
  if (body.size() > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'b')) {
    base = body[1] == 'x' ? 16 : 2;
    body = body.substr(2);
  } else if (body.size() > 1 && body[0] == '0') {
    base = 8;
    body = body.substr(1);
  }
  uint64_t v = 0;
  auto r = std::from_chars(body.data(), body.data() + body.size(), v, base);
  if (r.ec != std::errc() || r.ptr != body.data() + body.size()) return false;
  if (v > static_cast<uint64_t>(INT64_MAX)) return false;
  *out = neg ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
  return true;
}

bool parse_float(const std::string& s, double* out) {
  std::string t;
  for (char c : s)
    if (c != '_') t += c;
  std::string low;
  for (char c : t) low += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (low == ".inf" || low == "+.inf") {
    *out = INFINITY;
    return true;
  }
  if (low == "-.inf") {
    *out = -INFINITY;
    return true;
  }
  if (low == ".nan") {
    *out = NAN;
    return true;
  }
  const char* b = t.c_str();
  if (*b == '+') ++b;
  auto r = std::from_chars(b, t.c_str() + t.size(), *out);
  if (r.ptr != t.c_str() + t.size()) return false;
  if (r.ec == std::errc::result_out_of_range)  // Python's float(): 1.0e+400 is inf, 1.0e-400 is 0.0
    *out = std::strtod(t.c_str(), nullptr);
  return r.ec == std::errc() || r.ec == std::errc::result_out_of_range;
}

// float(n) of a decimal int beyond int64 (Python ints are unbounded): the nearest double; false where float()
// raises OverflowError (over ~1.8e308). Hex, octal, binary and sexagesimal ints that large stay unsupported.
bool big_decimal_int_as_float(const std::string& s, double* out) {
  std::string t;
  for (char c : s)
    if (c != '_') t += c;
  const size_t i = skip_sign(t);
  if (i >= t.size() || t[i] == '0' || !all_from(t, i, is_digit)) return false;
  auto r = std::from_chars(t.c_str() + (t[0] == '+' ? 1 : 0), t.c_str() + t.size(), *out);
  return r.ec == std::errc() && r.ptr == t.c_str() + t.size();
}

}  // namespace

Kind kind(const YAML::Node& node) {
  if (!node.IsDefined()) return Kind::kMissing;
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return Kind::kNone;
    case YAML::NodeType::Sequence:
      return Kind::kList;
    case YAML::NodeType::Map:
      return Kind::kDict;
    case YAML::NodeType::Scalar:
      return scalar_kind(node);
    default:
      return Kind::kMissing;
  }
}

YAML::Node get(const YAML::Node& map, const std::string& key) {
  if (!map.IsDefined() || !map.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  YAML::Node found(YAML::NodeType::Undefined);  // the last one, as a Python dict keeps a repeated key's last value
  for (auto it = map.begin(); it != map.end(); ++it)
    if (kind(it->first) == Kind::kStr && it->first.Scalar() == key) found = it->second;
  return found;
}

std::string repr(const YAML::Node& node) {
  switch (kind(node)) {
    case Kind::kMissing:
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return truthy(node) ? "True" : "False";
    case Kind::kInt: {
      int64_t v;
      return as_int(node, &v) ? std::to_string(v) : node.Scalar();
    }
    case Kind::kFloat: {
      double v;
      return as_float(node, &v) ? float_repr(v) : node.Scalar();
    }
    case Kind::kStr:
      return str_repr(node.Scalar());
    case Kind::kTimestamp: {
      Timestamp t;
      return parse_timestamp(node.Scalar(), &t) ? timestamp_repr(t) : str_repr(node.Scalar());
    }
    case Kind::kList: {
      std::string s = "[";
      bool first = true;
      for (const auto& it : node) {
        s += (first ? "" : ", ") + repr(it);
        first = false;
      }
      return s + "]";
    }
    case Kind::kDict: {
      std::string s = "{";
      bool first = true;
      for (const auto& it : node) {
        s += (first ? "" : ", ") + repr(it.first) + ": " + repr(it.second);
        first = false;
      }
      return s + "}";
    }
  }
  return "None";
}

std::string type_name(const YAML::Node& node) {
  switch (kind(node)) {
    case Kind::kMissing:
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kStr:
      return "str";
    case Kind::kTimestamp: {
      Timestamp t;
      return parse_timestamp(node.Scalar(), &t) && !t.date_only ? "datetime" : "date";
    }
    case Kind::kList:
      return "list";
    case Kind::kDict:
      return "dict";
  }
  return "NoneType";
}

bool truthy(const YAML::Node& node) {
  switch (kind(node)) {
    case Kind::kMissing:
    case Kind::kNone:
      return false;
    case Kind::kBool: {
      const std::string& s = node.Scalar();
      return s == "yes" || s == "Yes" || s == "YES" || s == "true" || s == "True" || s == "TRUE" || s == "on" ||
             s == "On" || s == "ON";
    }
    case Kind::kInt: {
      int64_t v = 0;
      return !as_int(node, &v) || v != 0;
    }
    case Kind::kFloat: {
      double v = 0;
      return !as_float(node, &v) || v != 0.0;
    }
    case Kind::kStr:
      return !node.Scalar().empty();
    case Kind::kTimestamp:
      return true;
    case Kind::kList:
    case Kind::kDict:
      return node.size() > 0;
  }
  return false;
}

bool as_int(const YAML::Node& node, int64_t* out) { return kind(node) == Kind::kInt && parse_int(node.Scalar(), out); }

bool as_float(const YAML::Node& node, double* out) {
  switch (kind(node)) {
    case Kind::kInt: {
      int64_t v;
      if (!as_int(node, &v)) return big_decimal_int_as_float(node.Scalar(), out);
      *out = static_cast<double>(v);
      return true;
    }
    case Kind::kFloat:
      return parse_float(node.Scalar(), out);
    case Kind::kBool:
      *out = truthy(node) ? 1.0 : 0.0;
      return true;
    case Kind::kStr: {  // float("1.5") works in Python; so do " 2 " and "inf"
      std::string s = node.Scalar();
      size_t b = s.find_first_not_of(" \t\n\r"), e = s.find_last_not_of(" \t\n\r");
      if (b == std::string::npos) return false;
      s = s.substr(b, e - b + 1);
      std::string low;
      for (char c : s) low += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (low == "inf" || low == "+inf" || low == "infinity") {
        *out = INFINITY;
        return true;
      }
      if (low == "-inf" || low == "-infinity") {
        *out = -INFINITY;
        return true;
      }
      if (low == "nan") {
        *out = NAN;
        return true;
      }
      return parse_float(s, out);
    }
    default:
      return false;
  }
}

void check_safe(const YAML::Node& node) {
  const std::string& tag = node.Tag();
  if (!tag.empty() && tag != "?" && tag != "!") {
    static const char* allowed[] = {"str",    "int",       "float", "bool",  "null", "map",  "seq",
                                    "binary", "timestamp", "omap",  "pairs", "set",  "merge"};
    std::string core = core_tag_name(tag);
    bool ok = false;
    for (const char* a : allowed) ok = ok || core == a;
    if (!ok) {
      std::string shown = core.empty() ? tag : "!!" + core;
      throw std::runtime_error("tag " + shown + " is not allowed (bundle.yaml must be plain data)");
    }
  }
  Timestamp t;
  if (kind(node) == Kind::kTimestamp && parse_timestamp(node.Scalar(), &t) && !timestamp_error(t).empty())
    throw std::runtime_error(timestamp_error(t));
  if (node.IsMap()) {
    for (const auto& it : node) {
      check_safe(it.first);
      check_safe(it.second);
    }
  } else if (node.IsSequence()) {
    for (const auto& it : node) check_safe(it);
  }
}

}  // namespace finsta_rt::yaml
