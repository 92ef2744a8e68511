// Bad input for the C++ API: each case prints "CASE<TAB>ErrorType<TAB>message" (or
// "CASE<TAB>NO ERROR"); tests/test_cpp_runtime.py checks the type and the wording.
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "finsta_rt/finsta_rt.h"
#include "selftest_io.h"

namespace fs = std::filesystem;
using namespace finsta_rt;

namespace {

void expect_error(const std::string& name, const std::function<void()>& f) {
  std::string line;
  try {
    f();
    line = "NO ERROR";
  } catch (...) {
    line = selftest::describe_current_exception();
  }
  for (auto& c : line)
    if (c == '\n') c = ' ';
  std::cout << name << "\t" << line << std::endl;
}

}  // namespace

int cmd_load(const std::vector<std::string>& args) {
  for (const auto& path : args) {
    try {
      const Bundle b = Bundle::load(path);
      std::cout << "OK\t" << b.sha256() << std::endl;
    } catch (...) {
      std::string line = selftest::describe_current_exception();
      for (auto& c : line)
        if (c == '\n') c = ' ';
      std::cout << line << std::endl;
    }
  }
  return 0;
}

int cmd_errors(const std::vector<std::string>& args) {
  if (args.size() != 1) throw std::runtime_error("errors BUNDLE");
  ModelOptions cpu;
  cpu.device = "cpu";
  const Model model(fs::path(args[0]), cpu);
  const int64_t S = model.bundle().preprocess().size, T = model.bundle().preprocess().frames;
  const std::vector<uint8_t> buf(static_cast<size_t>(2 * T * S * S * 4), 7);  // room for every shape below
  auto frames = [&](std::vector<int64_t> shape) { model.embed_frames(FrameView(buf, std::move(shape))); };

  expect_error("frames_rank4", [&] { frames({T, S, S, 3}); });
  expect_error("frames_size", [&] { frames({1, T, S + 1, S, 3}); });
  expect_error("frames_channels", [&] { frames({1, T, S, S, 4}); });
  expect_error("frames_negative", [&] { frames({-1, T, S, S, 3}); });
  expect_error("frames_empty_batch", [&] { frames({0, T, S, S, 3}); });
  expect_error("frames_no_frames", [&] { frames({1, 0, S, S, 3}); });
  expect_error("frames_short_buffer", [&] {
    model.embed_frames(FrameView(buf.data(), static_cast<size_t>(T * S * S * 3 - 1), {1, T, S, S, 3}));
  });
  expect_error("frames_null", [&] { model.embed_frames(FrameView(nullptr, 0, {1, T, S, S, 3})); });
  expect_error("videos_empty", [&] { model.embed_videos({}); });
  expect_error("videos_rank3", [&] { model.embed_videos({FrameView(buf, {T, 10, 10})}); });
  expect_error("videos_mixed_frames",
               [&] { model.embed_videos({FrameView(buf, {T, 10, 12, 3}), FrameView(buf, {T + 1, 10, 12, 3})}); });
  expect_error("videos_short_buffer", [&] { model.embed_videos({FrameView(buf.data(), 5, {T, 10, 12, 3})}); });
  expect_error("text_empty_list", [&] { model.embed_text({}); });
  expect_error("text_empty_string", [&] { model.embed_text({"a cat", ""}); });
  expect_error("text_whitespace_only", [&] { model.embed_text({" \t\n\u3000"}); });
  expect_error("text_control_only", [&] { model.embed_text({std::string("\x00\x07", 2)}); });
  expect_error("text_invalid_utf8", [&] { model.embed_text({"ok", "caf\xc3", "x"}); });
  expect_error("text_surrogate", [&] { model.embed_text({"\xed\xa0\x80"}); });
  expect_error("text_batch_size", [&] { model.embed_text({"a"}, 0); });
  const Tensor v = model.embed_frames(FrameView(buf, {1, T, S, S, 3})).at("video_embedding");
  const Tensor t = model.embed_text({"a cat"});
  expect_error("score_rank", [&] { model.score(Tensor({v.dim(0), v.dim(1) * v.dim(2)}, v.data), t); });
  expect_error("score_dim", [&] {
    model.score(v, Tensor({1, t.dim(1) + 1}, std::vector<float>(static_cast<size_t>(t.dim(1) + 1))));
  });
  expect_error("score_data", [&] {
    Tensor bad = t;
    bad.data.pop_back();
    model.score(v, bad);
  });
  expect_error("score_empty", [&] { model.score(Tensor({0, v.dim(1), v.dim(2)}, {}), t); });
  expect_error("output_name", [&] { model.embed_frames(FrameView(buf, {1, T, S, S, 3})).at("nope"); });
  expect_error("tokenizer_max_length", [&] { model.tokenizer().encode("x", 1); });
  expect_error("tokenizer_unknown_id", [&] { model.tokenizer().id_to_token(-4); });
  expect_error("vocab_missing", [&] { WordPieceTokenizer::from_vocab_file("/nonexistent/vocab.txt"); });
  expect_error("resize_empty", [&] { resize_and_crop(buf.data(), 0, 10, 3, 8); });
  expect_error("resize_mode", [&] { resize_and_crop(buf.data(), 4, 4, 3, 2, "squash"); });
  expect_error("device_unknown", [&] {
    ModelOptions o;
    o.device = "tpu";
    Model(fs::path(args[0]), o);
  });
  expect_error("device_cuda", [&] {
    ModelOptions o;
    o.device = "cuda:0";
    Model(fs::path(args[0]), o);
  });
  expect_error("ops_missing", [&] {
    ModelOptions o = cpu;
    o.ops_library = "/nonexistent/libfinsta_ops.so";
    Model(fs::path(args[0]), o);
  });
  expect_error("ops_not_a_library", [&] {
    ModelOptions o = cpu;
    o.ops_library = model.bundle().tokenizer_spec().vocab;  // a file, but no shared library
    Model(fs::path(args[0]), o);
  });
  // The model still works after all that.
  const Tensor s = model.score(v, model.embed_text({"a cat", "a dog"}));
  std::cout << "after_errors\tOK\t" << shape_str(s.shape) << std::endl;
  return 0;
}
