// C++ port of finsta_rt/preprocess.py: validation messages and the antialiased resize.
#include "finsta_rt/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "finsta_rt/errors.h"
#include "py_format.h"

namespace finsta_rt {
namespace {

std::string triple(const std::array<double, 3>& v) {
  return "(" + py::float_repr(v[0]) + ", " + py::float_repr(v[1]) + ", " + py::float_repr(v[2]) + ")";
}

// One output sample: the first input index it reads and its float32 weights (Python's _weights
// row, where every other weight is 0).
struct Taps {
  int first = 0;
  std::vector<float> w;
};

// Triangle filter on half-pixel centres, widened by the scale when shrinking; rows normalised.
std::vector<Taps> weights(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double support = std::max(scale, 1.0);
  std::vector<Taps> rows(out_size);
  for (int o = 0; o < out_size; ++o) {
    const double centre = (o + 0.5) * scale;
    int lo = std::max(0, static_cast<int>(std::floor(centre - support - 0.5)));
    int hi = std::min(in_size - 1, static_cast<int>(std::ceil(centre + support - 0.5)));
    std::vector<double> w;
    double sum = 0;
    for (int i = lo; i <= hi; ++i) {
      double v = std::max(0.0, 1.0 - std::fabs(i + 0.5 - centre) / support);
      w.push_back(v);
      sum += v;
    }
    rows[o].first = lo;
    for (double v : w) rows[o].w.push_back(static_cast<float>(v / sum));
  }
  return rows;
}

// weights(in_size, out_size), kept for the last sizes asked for in this thread: every frame of a
// video has the same size, so a video builds its weights once (as Python's lru_cache does).
struct WeightCache {
  int in_size = -1, out_size = -1;
  std::vector<Taps> rows;

  const std::vector<Taps>& get(int in, int out) {
    if (in != in_size || out != out_size) {
      rows = weights(in, out);
      in_size = in;
      out_size = out;
    }
    return rows;
  }
};

void check_image(const uint8_t* image, int h, int w, int channels) {
  if (!image) throw InputError("resize: the image pointer is null");
  if (h <= 0 || w <= 0)
    throw InputError("cannot resize an empty frame of " + std::to_string(h) + "x" + std::to_string(w));
  if (channels <= 0) throw InputError("resize: channels must be positive, got " + std::to_string(channels));
}

}  // namespace

void PreprocessSpec::validate() const {
  if (size <= 0) throw InputError("preprocess size must be a positive integer, got " + std::to_string(size));
  if (resize != "shorter_side_then_center_crop" && resize != "stretch")
    throw InputError("preprocess resize must be one of ('shorter_side_then_center_crop', 'stretch'), got " +
                     py::str_repr(resize));
  if (interpolation != "bilinear")
    throw InputError("preprocess interpolation must be one of ('bilinear',), got " + py::str_repr(interpolation));
  if (colour != "RGB" || dtype != "uint8")
    throw InputError("only uint8 RGB input is supported, got " + dtype + " " + colour);
  if (std::min({std[0], std[1], std[2]}) <= 0 || std::isnan(std[0] + std[1] + std[2]))
    throw InputError("preprocess mean/std must be 3 values each, std > 0; got " + triple(mean) + ", " + triple(std));
  if (frames <= 0) throw InputError("preprocess frames must be a positive integer, got " + std::to_string(frames));
}

std::vector<uint8_t> resize(const uint8_t* image, int h, int w, int channels, int out_h, int out_w) {
  check_image(image, h, w, channels);
  if (out_h <= 0 || out_w <= 0)
    throw InputError("cannot resize to an empty frame of " + std::to_string(out_h) + "x" + std::to_string(out_w));
  const size_t row = static_cast<size_t>(w) * channels;
  if (h == out_h && w == out_w) return std::vector<uint8_t>(image, image + static_cast<size_t>(h) * row);
  // Pass 1 along the height, into float32 as numpy does; pass 2 along the width.
  thread_local WeightCache height_cache, width_cache;
  const std::vector<Taps>& wh = height_cache.get(h, out_h);
  const std::vector<Taps>& ww = width_cache.get(w, out_w);
  std::vector<float> tmp(static_cast<size_t>(out_h) * row, 0.0f);
  for (int o = 0; o < out_h; ++o) {
    float* dst = tmp.data() + static_cast<size_t>(o) * row;
    const Taps& t = wh[o];
    for (size_t k = 0; k < t.w.size(); ++k) {
      const uint8_t* src = image + static_cast<size_t>(t.first + k) * row;
      const float wk = t.w[k];
      for (size_t j = 0; j < row; ++j) dst[j] += wk * static_cast<float>(src[j]);
    }
  }
  std::vector<uint8_t> out(static_cast<size_t>(out_h) * out_w * channels);
  std::vector<float> acc(channels);
  for (int o = 0; o < out_h; ++o) {
    const float* src_row = tmp.data() + static_cast<size_t>(o) * row;
    for (int p = 0; p < out_w; ++p) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      const Taps& t = ww[p];
      for (size_t k = 0; k < t.w.size(); ++k) {
        const float* px = src_row + static_cast<size_t>(t.first + k) * channels;
        for (int c = 0; c < channels; ++c) acc[c] += t.w[k] * px[c];
      }
      uint8_t* dst = out.data() + (static_cast<size_t>(o) * out_w + p) * channels;
      for (int c = 0; c < channels; ++c) {
        const float v = std::nearbyint(acc[c]);  // round half to even, as np.rint
        dst[c] = static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f));
      }
    }
  }
  return out;
}

std::vector<uint8_t> resize_and_crop(const uint8_t* image, int h, int w, int channels, int size,
                                     const std::string& mode) {
  check_image(image, h, w, channels);
  if (size <= 0) throw InputError("resize_and_crop: size must be positive, got " + std::to_string(size));
  if (mode == "stretch") return resize(image, h, w, channels, size, size);
  if (mode != "shorter_side_then_center_crop")
    throw InputError("resize mode must be one of ('shorter_side_then_center_crop', 'stretch'), got " +
                     py::str_repr(mode));
  int nh, nw;
  if (h <= w) {
    nh = size;
    nw = std::max(size, static_cast<int>(std::nearbyint(static_cast<double>(w) * size / h)));
  } else {
    nh = std::max(size, static_cast<int>(std::nearbyint(static_cast<double>(h) * size / w)));
    nw = size;
  }
  const int top = (nh - size) / 2, left = (nw - size) / 2;
  // Resize the whole frame, then crop (cropping first would change the filter at the edges).
  std::vector<uint8_t> full = resize(image, h, w, channels, nh, nw);
  if (nh == size && nw == size) return full;
  std::vector<uint8_t> out(static_cast<size_t>(size) * size * channels);
  for (int y = 0; y < size; ++y)
    std::memcpy(out.data() + static_cast<size_t>(y) * size * channels,
                full.data() + (static_cast<size_t>(y + top) * nw + left) * channels,
                static_cast<size_t>(size) * channels);
  return out;
}

}  // namespace finsta_rt
