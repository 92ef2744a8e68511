// finsta_rank: rank texts by how well they describe a video.
//
//   finsta_rank BUNDLE VIDEO "text 1" "text 2" ... [--device auto|cpu|cuda[:N]]
//
// Decodes VIDEO with FFmpeg (the bundle's T frames, uniformly over the whole video), resizes and
// crops them as the bundle says (finsta_rt::resize_and_crop), embeds them and the texts with the
// bundle's graphs, scores every text against the video and prints the texts best first.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include <finsta_rt/finsta_rt.h>

#include "decode_video.h"

namespace {

int usage() {
  std::cerr << "usage: finsta_rank BUNDLE VIDEO TEXT [TEXT...] [--device auto|cpu|cuda[:N]]\n"
               "Ranks the TEXTs by their score against VIDEO with the model bundle BUNDLE.\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  finsta_rt::ModelOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--device" && i + 1 < argc)
      options.device = argv[++i];
    else if (a == "-h" || a == "--help")
      return usage();
    else
      positional.push_back(a);
  }
  if (positional.size() < 3) return usage();
  const std::string bundle_path = positional[0], video_path = positional[1];
  const std::vector<std::string> texts(positional.begin() + 2, positional.end());
  try {
    const finsta_rt::Model model(bundle_path, options);
    const finsta_rt::Bundle& b = model.bundle();
    std::cout << "bundle: " << b.name() << " (" << b.family() << ", " << b.flavour() << ") on " << model.device()
              << "\n";

    const DecodedFrames v = decode_uniform(video_path, b.preprocess().frames);
    std::cout << "video:  " << video_path << ": " << v.frames << " frames of " << v.width << "x" << v.height << " at";
    for (double t : v.times) std::printf(" %.2f", t);
    std::printf(" s (of %.2f s)\n", v.duration);

    const finsta_rt::FrameView frames(v.rgb, {v.frames, v.height, v.width, 3});
    const finsta_rt::TensorMap video = model.embed_videos({frames});
    const finsta_rt::Tensor text = model.embed_text(texts);
    const finsta_rt::Tensor scores = model.score(video.at("video_embedding"), text);  // [texts, 1]

    std::vector<size_t> order(texts.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores.data[a] > scores.data[b]; });
    std::printf("\n%4s  %7s  %s\n", "rank", "score", "text");
    for (size_t r = 0; r < order.size(); ++r)
      std::printf("%4zu  %7.4f  %s\n", r + 1, scores.data[order[r]], texts[order[r]].c_str());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "finsta_rank: error: " << e.what() << "\n";
    return 1;
  }
}
