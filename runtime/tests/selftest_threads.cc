// Concurrent calls on one Model: every thread embeds the same frames and texts and scores them;
// each result must equal the single-threaded one. Prints "max_abs_diff X calls N".
#include <algorithm>
#include <atomic>
#include <cmath>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

#include "finsta_rt/finsta_rt.h"
#include "selftest_io.h"

namespace fs = std::filesystem;
using namespace finsta_rt;

namespace {

double max_diff(const Tensor& a, const Tensor& b) {
  if (a.shape != b.shape) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.data.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(a.data[i] - b.data[i])));
  return m;
}

}  // namespace

int cmd_threads(const std::vector<std::string>& args) {
  if (args.size() != 6) throw std::runtime_error("threads BUNDLE FRAMES SHAPE TEXTS THREADS ITERATIONS");
  ModelOptions o;
  o.device = "cpu";
  o.intra_op_threads = 1;
  const Model model(fs::path(args[0]), o);
  const std::vector<uint8_t> frames = selftest::read_bytes(args[1]);
  const FrameView view(frames, selftest::parse_shape(args[2]));
  const std::vector<std::string> texts = selftest::read_texts(args[3]);
  const int threads = std::stoi(args[4]), iterations = std::stoi(args[5]);

  const TensorMap ref_video = model.embed_frames(view);
  const Tensor ref_text = model.embed_text(texts);
  const Tensor ref_scores = model.score(ref_video.at("video_embedding"), ref_text);

  std::mutex mutex;
  double worst = 0;
  std::atomic<int> calls{0};
  std::vector<std::string> failures;
  std::vector<std::thread> pool;
  for (int k = 0; k < threads; ++k) {
    pool.emplace_back([&] {
      for (int i = 0; i < iterations; ++i) {
        try {
          const TensorMap v = model.embed_frames(view);
          const Tensor t = model.embed_text(texts);
          const Tensor s = model.score(v.at("video_embedding"), t);
          double d = max_diff(s, ref_scores);
          d = std::max(d, max_diff(t, ref_text));
          for (const auto& [name, tensor] : ref_video) d = std::max(d, max_diff(v.at(name), tensor));
          calls += 3;
          std::lock_guard<std::mutex> lock(mutex);
          worst = std::max(worst, d);
        } catch (...) {
          std::lock_guard<std::mutex> lock(mutex);
          failures.push_back(selftest::describe_current_exception());
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  for (const auto& f : failures) std::cout << "failure\t" << f << "\n";
  std::cout << "max_abs_diff " << worst << " calls " << calls.load() << std::endl;
  return failures.empty() && worst <= 1e-6 ? 0 : 1;
}
