// Python's repr() of a str and of a float, so that messages read as the Python runtime's do.
#pragma once

#include <string>

namespace finsta_rt::py {

std::string str_repr(const std::string& s);  // 'text' (or "it's")
std::string float_repr(double v);            // 127.5, 127.0, 1e-05, inf

}  // namespace finsta_rt::py
