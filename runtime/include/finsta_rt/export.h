// Symbol visibility of the finsta_rt shared library: everything is hidden except what is marked.
#pragma once

#if defined(_WIN32)
#define FINSTA_RT_API
#else
#define FINSTA_RT_API __attribute__((visibility("default")))
#endif
