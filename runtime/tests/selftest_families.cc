// The family commands of finsta_rt_selftest (tests/test_cpp_families.py): every output of a
// bundle's three graphs (a user video graph optional), the text scene-graph parser and feed, and
// the bad inputs of these entry points.
//
//   family BUNDLE OUTDIR FRAMES B,T,S,S,3 TEXTS [USER_GRAPH_DIR]
//   text-graph VOCAB MAX_LENGTH MAX_NODES TEXTS OUTDIR
//   family-errors BUNDLE FRAMES B,T,S,S,3
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "finsta_rt/finsta_rt.h"
#include "selftest_io.h"

namespace fs = std::filesystem;
using namespace finsta_rt;

namespace {

ModelOptions cpu() {
  ModelOptions mo;
  mo.device = "cpu";
  return mo;
}

template <typename T>
Tensor as_tensor(const std::vector<T>& v, std::vector<int64_t> shape, const char* dtype) {
  Tensor t(std::move(shape), std::vector<float>(v.begin(), v.end()));
  t.dtype = dtype;
  return t;
}

}  // namespace

int cmd_family(const std::vector<std::string>& args) {
  if (args.size() != 5 && args.size() != 6)
    throw std::runtime_error("family BUNDLE OUTDIR FRAMES B,T,S,S,3 TEXTS [USER_GRAPH_DIR]");
  const Model model(fs::path(args[0]), cpu());
  const fs::path out = args[1];
  fs::create_directories(out);
  const std::vector<uint8_t> frames = selftest::read_bytes(args[2]);
  const FrameView view(frames, selftest::parse_shape(args[3]));
  TensorMap user;
  if (args.size() == 6)
    for (const char* name : {"slot_box", "slot_mask", "slot_adj"}) user.add(name, selftest::read_tensor(args[5], name));
  const TensorMap video = model.embed_frames(view, args.size() == 6 ? &user : nullptr);
  const TensorMap text = model.embed_texts(selftest::read_texts(args[4]), 2);  // batches of 2: the concatenation
  const TensorMap parts = model.score_parts(video, text);
  for (const auto& [prefix, map] : {std::make_pair("video.", &video), {"text.", &text}, {"score.", &parts}})
    for (const auto& [name, t] : *map) selftest::write_tensor(out, prefix + name, t);
  std::ofstream dtypes(out / "dtypes.txt");
  for (const auto& [prefix, map] : {std::make_pair("video.", &video), {"text.", &text}, {"score.", &parts}})
    for (const auto& [name, t] : *map) dtypes << prefix << name << " " << t.dtype << "\n";
  return dtypes ? 0 : 1;
}

int cmd_text_graph(const std::vector<std::string>& args) {
  if (args.size() != 5) throw std::runtime_error("text-graph VOCAB MAX_LENGTH MAX_NODES TEXTS OUTDIR");
  TokenizerOptions o;
  o.max_length = std::stoi(args[1]);
  const auto tok = WordPieceTokenizer::from_vocab_file(args[0], o);
  const int64_t N = std::stoll(args[2]);
  const auto texts = selftest::read_texts(args[3]);
  const fs::path out = args[4];
  fs::create_directories(out);
  // One text at a time (the graphs and each text's own feed), then the whole batch padded together.
  std::ofstream graphs(out / "graphs.txt");
  std::vector<std::string> ok;  // the texts that parse: fed together below
  for (size_t i = 0; i < texts.size(); ++i) {
    graphs << i;
    try {
      const TextSceneGraph g = rule_parse(texts[i]);
      ok.push_back(texts[i]);
      for (const auto& n : g.nodes) graphs << " " << kind_name(n.kind) << ":" << n.start << ":" << n.end;
      graphs << " |";
      for (const auto& e : g.edges) graphs << " " << e.source << ":" << e.target << ":" << kind_name(e.kind);
    } catch (...) {
      std::string msg = selftest::describe_current_exception();
      graphs << " ERR " << msg;
    }
    graphs << "\n";
  }
  const TextGraphFeed f = text_graph_feed(ok, tok, N);
  const int64_t B = f.texts, L = f.tokens;
  selftest::write_tensor(out, "input_ids", as_tensor(f.input_ids, {B, L}, "int64"));
  selftest::write_tensor(out, "attention_mask", as_tensor(f.attention_mask, {B, L}, "int64"));
  selftest::write_tensor(out, "node_span", as_tensor(f.node_span, {B, N, 2}, "int64"));
  selftest::write_tensor(out, "node_type", as_tensor(f.node_type, {B, N}, "int64"));
  selftest::write_tensor(out, "node_mask", as_tensor(f.node_mask, {B, N}, "bool"));
  selftest::write_tensor(out, "adj", as_tensor(f.adj, {B, N, N}, "bool"));
  selftest::write_tensor(out, "edge_type", as_tensor(f.edge_type, {B, N, N}, "int64"));
  selftest::write_tensor(out, "pred_order", as_tensor(f.pred_order, {B, N}, "int64"));
  return graphs ? 0 : 1;
}

int cmd_family_errors(const std::vector<std::string>& args) {
  if (args.size() != 3) throw std::runtime_error("family-errors BUNDLE FRAMES B,T,S,S,3");
  const Model model(fs::path(args[0]), cpu());
  const std::vector<uint8_t> frames = selftest::read_bytes(args[1]);
  const std::vector<int64_t> shape = selftest::parse_shape(args[2]);
  const FrameView view(frames, shape);
  const int64_t B = shape[0], T = shape[1];
  const TensorMap video = model.embed_frames(view);
  const TensorMap text = model.embed_texts({"a red circle moves left"});
  auto user_graph = [&](int64_t K, int64_t t) {
    TensorMap g;
    g.add("slot_box", Tensor({B, t, K, 4}, std::vector<float>(static_cast<size_t>(B * t * K * 4), 0.25f)));
    g.add("slot_mask", Tensor({B, t, K}, std::vector<float>(static_cast<size_t>(B * t * K), 1.0f)));
    g.add("slot_adj", Tensor({B, t, K, K}, std::vector<float>(static_cast<size_t>(B * t * K * K), 1.0f)));
    return g;
  };
  const int64_t K = model.takes_user_graph() ? video.at("video_tracks").dim(1) : 2;
  std::vector<std::pair<std::string, std::function<void()>>> cases;
  cases.emplace_back("user_graph_missing_slot_adj", [&] {
    TensorMap g;
    for (const auto& [name, t] : user_graph(K, T))
      if (name != "slot_adj") g.add(name, t);
    model.embed_frames(view, &g);
  });
  cases.emplace_back("user_graph_wrong_slots", [&] {
    const TensorMap g = user_graph(K + 1, T);
    model.embed_frames(view, &g);
  });
  cases.emplace_back("user_graph_wrong_frames", [&] {
    const TensorMap g = user_graph(K, T + 1);
    model.embed_frames(view, &g);
  });
  cases.emplace_back("texts_empty_list", [&] { model.embed_texts({}); });
  cases.emplace_back("texts_blank", [&] { model.embed_texts({"a dog", "a cat", "  \t "}); });
  cases.emplace_back("texts_bad_utf8", [&] { model.embed_texts({"a dog", "caf\xc3"}); });
  cases.emplace_back("score_parts_missing_video", [&] { model.score_parts(TensorMap(), text); });
  cases.emplace_back("score_parts_missing_text", [&] { model.score_parts(video, TensorMap()); });
  cases.emplace_back("score_parts_bad_shape", [&] {
    TensorMap v;
    for (const auto& [name, t] : video) {
      Tensor bad = t;
      if (name == "video_embedding") bad = Tensor({B, 1}, std::vector<float>(static_cast<size_t>(B), 0.0f));
      v.add(name, bad);
    }
    model.score_parts(v, text);
  });
  cases.emplace_back("score_many_inputs", [&] { model.score(video.at("video_embedding"), text.at("text_embedding")); });
  cases.emplace_back("frames_wrong_count", [&] {
    std::vector<int64_t> s = shape;
    s[1] = T - 1;
    model.embed_frames(FrameView(frames, s));
  });
  for (const auto& [name, run] : cases) {
    std::cout << name << "\t";
    try {
      run();
      std::cout << "OK\n";
    } catch (...) {
      std::cout << selftest::describe_current_exception() << "\n";
    }
  }
  return 0;
}
