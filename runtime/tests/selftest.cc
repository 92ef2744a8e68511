// finsta_rt_selftest: the C++ side of tests/test_cpp_runtime.py. Each command runs one part of
// the public API on inputs the Python test wrote and writes what it got, for the test to compare
// with the Python runtime; the same binary is also built with ASan + UBSan and run directly.
//
//   sha256 FILE...
//   tokenize VOCAB TEXTS OUT --max-lengths 0,2,32 [--lowercase 0|1] [--strip-accents 0|1] [--max-input-chars N]
//            [--merges MERGES]   (with MERGES: the CLIP BPE tokenizer of VOCAB (vocab.json) and MERGES)
//   batch VOCAB TEXTS OUT MAX_LENGTH longest|max_length [MERGES]   (CLIP: eot_positions on a 4th line)
//   clip-files VOCAB MERGES [VOCAB MERGES]...   (one line each: OK or the error)
//   embed BUNDLE OUTDIR FRAMES B,T,S,S,3 TEXTS [VIDEOS N,T,H,W,3]
//   resize IMAGE H,W,C SIZE MODE OUT
//   load PATH...                       (selftest_errors.cc)
//   errors BUNDLE                      (selftest_errors.cc)
//   threads BUNDLE FRAMES SHAPE TEXTS THREADS ITERATIONS   (selftest_threads.cc)
//   family BUNDLE OUTDIR FRAMES B,T,S,S,3 TEXTS [USER_GRAPH_DIR]   (selftest_families.cc)
//   text-graph VOCAB MAX_LENGTH MAX_NODES TEXTS OUTDIR              (selftest_families.cc)
//   family-errors BUNDLE FRAMES B,T,S,S,3                           (selftest_families.cc)
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "finsta_rt/finsta_rt.h"
#include "selftest_io.h"

namespace fs = std::filesystem;
using namespace finsta_rt;

int cmd_load(const std::vector<std::string>& args);
int cmd_errors(const std::vector<std::string>& args);
int cmd_threads(const std::vector<std::string>& args);
int cmd_family(const std::vector<std::string>& args);
int cmd_text_graph(const std::vector<std::string>& args);
int cmd_family_errors(const std::vector<std::string>& args);

namespace {

std::string one_line(std::string s) {
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// "--name value" options after the positional arguments.
std::map<std::string, std::string> options(const std::vector<std::string>& args, size_t first) {
  std::map<std::string, std::string> out;
  for (size_t i = first; i + 1 < args.size(); i += 2) out[args[i]] = args[i + 1];
  return out;
}

int cmd_sha256(const std::vector<std::string>& args) {
  for (const auto& a : args) std::cout << sha256_file(a) << "  " << a << "\n";
  return 0;
}

// A ClipBpeTokenizer of `vocab` and `merges` when `merges` is given, else a WordPieceTokenizer of `vocab`.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& vocab, const std::string& merges,
                                          const TokenizerOptions& o = {}) {
  if (!merges.empty()) return std::make_unique<ClipBpeTokenizer>(ClipBpeTokenizer::from_files(vocab, merges));
  return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_vocab_file(vocab, o));
}

int cmd_tokenize(const std::vector<std::string>& args) {
  if (args.size() < 3) throw std::runtime_error("tokenize VOCAB TEXTS OUT [options]");
  auto opt = options(args, 3);
  TokenizerOptions o;
  if (opt.count("--lowercase")) o.lowercase = opt["--lowercase"] == "1";
  if (opt.count("--strip-accents")) o.strip_accents = opt["--strip-accents"] == "1";
  if (opt.count("--max-input-chars")) o.max_input_chars_per_word = std::stoi(opt["--max-input-chars"]);
  const auto owned = load_tokenizer(args[0], opt.count("--merges") ? opt["--merges"] : "", o);
  const Tokenizer& tok = *owned;
  std::vector<int64_t> lengths = selftest::parse_shape(opt.count("--max-lengths") ? opt["--max-lengths"] : "0");
  const auto texts = selftest::read_texts(args[1]);
  std::ofstream out(args[2]);
  for (size_t i = 0; i < texts.size(); ++i) {
    for (int64_t L : lengths) {
      out << i << " " << L;
      try {
        const auto ids = L == 0 ? tok.text_ids(texts[i]) : tok.encode(texts[i], static_cast<int>(L));
        for (int64_t id : ids) out << " " << id;
      } catch (...) {
        out << " ERR " << one_line(selftest::describe_current_exception());
      }
      out << "\n";
    }
  }
  return out ? 0 : 1;
}

int cmd_batch(const std::vector<std::string>& args) {
  if (args.size() != 5 && args.size() != 6)
    throw std::runtime_error("batch VOCAB TEXTS OUT MAX_LENGTH longest|max_length [MERGES]");
  const auto tok = load_tokenizer(args[0], args.size() == 6 ? args[5] : "");
  const auto b = tok->encode_batch(selftest::read_texts(args[1]), std::stoi(args[3]),
                                   args[4] == "max_length" ? Padding::kMaxLength : Padding::kLongest);
  std::ofstream out(args[2]);
  out << b.rows << " " << b.cols << "\n";
  for (int64_t v : b.input_ids) out << v << " ";
  out << "\n";
  for (int64_t v : b.attention_mask) out << v << " ";
  out << "\n";
  if (const auto* clip = dynamic_cast<const ClipBpeTokenizer*>(tok.get())) {
    try {
      for (int64_t v : clip->eot_positions(b)) out << v << " ";
    } catch (...) {
      out << "ERR " << one_line(selftest::describe_current_exception());
    }
    out << "\n";
  }
  return out ? 0 : 1;
}

int cmd_clip_files(const std::vector<std::string>& args) {
  if (args.empty() || args.size() % 2) throw std::runtime_error("clip-files VOCAB MERGES [VOCAB MERGES]...");
  for (size_t i = 0; i < args.size(); i += 2) {
    try {
      const auto tok = ClipBpeTokenizer::from_files(args[i], args[i + 1]);
      std::cout << "OK\t" << tok.vocab_size() << " " << tok.merges() << std::endl;
    } catch (...) {
      std::cout << one_line(selftest::describe_current_exception()) << std::endl;
    }
  }
  return 0;
}

int cmd_embed(const std::vector<std::string>& args) {
  if (args.size() != 5 && args.size() != 7)
    throw std::runtime_error("embed BUNDLE OUTDIR FRAMES B,T,S,S,3 TEXTS [VIDEOS N,T,H,W,3]");
  ModelOptions mo;
  mo.device = "cpu";
  const Model model(fs::path(args[0]), mo);
  const fs::path out = args[1];
  fs::create_directories(out);
  const std::vector<uint8_t> frames = selftest::read_bytes(args[2]);
  const TensorMap video = model.embed_frames(FrameView(frames, selftest::parse_shape(args[3])));
  for (const auto& [name, t] : video) selftest::write_tensor(out, "video." + name, t);
  const Tensor text = model.embed_text(selftest::read_texts(args[4]));
  selftest::write_tensor(out, "text_embedding", text);
  selftest::write_tensor(out, "scores", model.score(video.at("video_embedding"), text));
  if (args.size() == 7) {  // whole videos of any size: resized in C++, then embedded
    const std::vector<uint8_t> raw = selftest::read_bytes(args[5]);
    const std::vector<int64_t> s = selftest::parse_shape(args[6]);
    const size_t per_video = static_cast<size_t>(s[1] * s[2] * s[3] * s[4]);
    std::vector<FrameView> videos;
    for (int64_t v = 0; v < s[0]; ++v)
      videos.emplace_back(raw.data() + v * per_video, per_video, std::vector<int64_t>(s.begin() + 1, s.end()));
    const TensorMap r = model.embed_videos(videos, 2);  // batches of 2: exercises the concatenation
    for (const auto& [name, t] : r) selftest::write_tensor(out, "videos." + name, t);
  }
  std::cout << "device " << model.device() << ", ops library " << model.ops_library() << "\n";
  return 0;
}

int cmd_resize(const std::vector<std::string>& args) {
  if (args.size() != 5) throw std::runtime_error("resize IMAGE H,W,C SIZE MODE OUT");
  const std::vector<uint8_t> img = selftest::read_bytes(args[0]);
  const auto s = selftest::parse_shape(args[1]);
  if (img.size() != static_cast<size_t>(s[0] * s[1] * s[2])) throw std::runtime_error("image size does not match");
  const auto r = resize_and_crop(img.data(), static_cast<int>(s[0]), static_cast<int>(s[1]), static_cast<int>(s[2]),
                                 std::stoi(args[2]), args[3]);
  std::ofstream out(args[4], std::ios::binary);
  out.write(reinterpret_cast<const char*>(r.data()), static_cast<std::streamsize>(r.size()));
  return out ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: finsta_rt_selftest COMMAND ARGS... (see runtime/tests/selftest.cc)\n";
    return 2;
  }
  const std::string cmd = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  try {
    if (cmd == "sha256") return cmd_sha256(args);
    if (cmd == "tokenize") return cmd_tokenize(args);
    if (cmd == "batch") return cmd_batch(args);
    if (cmd == "clip-files") return cmd_clip_files(args);
    if (cmd == "embed") return cmd_embed(args);
    if (cmd == "resize") return cmd_resize(args);
    if (cmd == "load") return cmd_load(args);
    if (cmd == "errors") return cmd_errors(args);
    if (cmd == "threads") return cmd_threads(args);
    if (cmd == "family") return cmd_family(args);
    if (cmd == "text-graph") return cmd_text_graph(args);
    if (cmd == "family-errors") return cmd_family_errors(args);
    std::cerr << "unknown command " << cmd << "\n";
    return 2;
  } catch (...) {
    std::cerr << "finsta_rt_selftest " << cmd << ": " << selftest::describe_current_exception() << "\n";
    return 1;
  }
}
