// The graph builder, rule_parse and text_graph_feed: ports of finsta_rt/scene_graph/graph.py and
// encode.py (see text_graph.h).
#include "finsta_rt/text_graph.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <tuple>

#include "finsta_rt/errors.h"
#include "text_graph_internal.h"
#include "utf8.h"

namespace finsta_rt {
namespace {

constexpr int64_t kSelfEdge = 1;
int64_t node_type_id(NodeKind k) { return static_cast<int64_t>(k) + 1; }  // object 1, attribute 2, predicate 3
int64_t edge_type_id(EdgeKind k) {  // subj 2, obj 3, attr 4; the reverse direction + 3
  return k == EdgeKind::kSubj ? 2 : k == EdgeKind::kObj ? 3 : 4;
}

std::u32string decode_text(const std::string& text, const std::string& what) {
  std::u32string out;
  size_t bad = 0;
  if (!utf8::decode(text, &out, &bad))
    throw InputError(what + " is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  return out;
}

// Token range [a, b) of the word pieces overlapping chars [start, end) among tokens 1 .. limit - 1
// (encode.py's _token_span); false when none survives the truncation.
bool token_span(const std::vector<std::pair<int64_t, int64_t>>& spans, int64_t start, int64_t end, size_t limit,
                std::pair<int64_t, int64_t>& out) {
  int64_t first = -1, last = -1;
  for (size_t i = 1; i < limit; ++i) {
    const auto& [s, e] = spans[i];
    if (e > start && s < end && e > s) {
      if (first < 0) first = static_cast<int64_t>(i);
      last = static_cast<int64_t>(i);
    }
  }
  if (first < 0) return false;
  out = {first, last + 1};
  return true;
}

}  // namespace

const char* kind_name(NodeKind kind) {
  switch (kind) {
    case NodeKind::kObject:
      return "object";
    case NodeKind::kAttribute:
      return "attribute";
    case NodeKind::kPredicate:
      return "predicate";
  }
  return "?";
}

const char* kind_name(EdgeKind kind) {
  switch (kind) {
    case EdgeKind::kSubj:
      return "subj";
    case EdgeKind::kObj:
      return "obj";
    case EdgeKind::kAttr:
      return "attr";
  }
  return "?";
}

int64_t GraphBuilder::node(NodeKind kind, int64_t start, int64_t end) {
  nodes.push_back({kind, start, end});
  return static_cast<int64_t>(nodes.size()) - 1;
}

void GraphBuilder::edge(int64_t source, int64_t target, EdgeKind kind) {
  for (const auto& e : edges)
    if (e.source == source && e.target == target && e.kind == kind) return;
  edges.push_back({source, target, kind});
}

TextSceneGraph GraphBuilder::build() const {
  std::vector<size_t> order(nodes.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::make_tuple(nodes[a].start, nodes[a].kind, a) < std::make_tuple(nodes[b].start, nodes[b].kind, b);
  });
  std::vector<int64_t> renumber(nodes.size());
  TextSceneGraph g;
  for (size_t k = 0; k < order.size(); ++k) {
    renumber[order[k]] = static_cast<int64_t>(k);
    g.nodes.push_back(nodes[order[k]]);
  }
  for (const auto& e : edges) {
    const GraphEdge r{renumber[static_cast<size_t>(e.source)], renumber[static_cast<size_t>(e.target)], e.kind};
    const bool seen = std::any_of(g.edges.begin(), g.edges.end(), [&](const GraphEdge& x) {
      return x.source == r.source && x.target == r.target && x.kind == r.kind;
    });
    if (!seen) g.edges.push_back(r);
  }
  std::sort(g.edges.begin(), g.edges.end(), [](const GraphEdge& a, const GraphEdge& b) {
    if (a.source != b.source || a.target != b.target)
      return std::make_pair(a.source, a.target) < std::make_pair(b.source, b.target);
    return std::strcmp(kind_name(a.kind), kind_name(b.kind)) < 0;
  });
  return g;
}

TextSceneGraph rule_parse(std::string_view text) {
  return rule_parse_codepoints(decode_text(std::string(text), "text"));
}

TextGraphFeed text_graph_feed(const std::vector<std::string>& texts, const WordPieceTokenizer& tokenizer,
                              int64_t max_nodes) {
  if (max_nodes < 1) throw InputError("max_nodes must be >= 1, got " + std::to_string(max_nodes));
  if (texts.empty()) throw InputError("text_graph_feed needs at least one text");
  std::vector<std::u32string> decoded;
  for (size_t b = 0; b < texts.size(); ++b) {
    decoded.push_back(decode_text(texts[b], "texts[" + std::to_string(b) + "]"));
    if (is_blank(decoded.back()))
      throw InputError("texts[" + std::to_string(b) + "] is empty: no scene graph to encode");
  }
  TextGraphFeed f;
  EncodedBatch batch = tokenizer.encode_batch(texts);
  const int64_t B = batch.rows, N = max_nodes;
  f.texts = B;
  f.tokens = batch.cols;
  f.nodes = N;
  f.input_ids = std::move(batch.input_ids);
  f.attention_mask = std::move(batch.attention_mask);
  const size_t BN = static_cast<size_t>(B * N);
  f.node_span.assign(BN * 2, 0);
  for (size_t k = 0; k < BN; ++k) f.node_span[2 * k + 1] = 1;  // padding (0, 1) = [CLS]
  f.node_type.assign(BN, 0);
  f.node_mask.assign(BN, 0);
  f.edge_type.assign(BN * static_cast<size_t>(N), 0);
  f.pred_order.assign(BN, -1);
  auto et = [&](int64_t b, int64_t u, int64_t v) -> int64_t& {
    return f.edge_type[static_cast<size_t>((b * N + u) * N + v)];
  };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < N; ++k) et(b, k, k) = kSelfEdge;
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (int64_t b = 0; b < B; ++b) {
    const TextSceneGraph g = rule_parse_codepoints(decoded[static_cast<size_t>(b)]);
    const std::vector<int64_t> ids =
        tokenizer.encode_with_offsets(texts[static_cast<size_t>(b)], spans, static_cast<int>(batch.cols));
    const size_t last = ids.size() - 1;  // [SEP]
    std::vector<size_t> keep;
    std::vector<std::pair<int64_t, int64_t>> tok_spans(g.nodes.size());
    for (size_t i = 0; i < g.nodes.size(); ++i)
      if (token_span(spans, g.nodes[i].start, g.nodes[i].end, last, tok_spans[i])) keep.push_back(i);
    if (static_cast<int64_t>(keep.size()) > N) {  // the first N in caption order
      std::stable_sort(keep.begin(), keep.end(), [&](size_t x, size_t y) {
        return std::make_pair(g.nodes[x].start, x) < std::make_pair(g.nodes[y].start, y);
      });
      keep.resize(static_cast<size_t>(N));
      std::sort(keep.begin(), keep.end());
    }
    std::vector<int64_t> slot(g.nodes.size(), -1);
    for (size_t s = 0; s < keep.size(); ++s) {
      const size_t i = keep[s];
      slot[i] = static_cast<int64_t>(s);
      const size_t at = static_cast<size_t>(b * N) + s;
      f.node_span[2 * at] = tok_spans[i].first;
      f.node_span[2 * at + 1] = tok_spans[i].second;
      f.node_type[at] = node_type_id(g.nodes[i].kind);
      f.node_mask[at] = 1;
    }
    for (const auto& e : g.edges) {
      const int64_t u = slot[static_cast<size_t>(e.source)], v = slot[static_cast<size_t>(e.target)];
      if (u < 0 || v < 0) continue;
      et(b, u, v) = edge_type_id(e.kind);
      et(b, v, u) = edge_type_id(e.kind) + 3;
    }
    std::vector<size_t> preds;  // predicate_order: by (start, index)
    for (size_t i = 0; i < g.nodes.size(); ++i)
      if (g.nodes[i].kind == NodeKind::kPredicate && slot[i] >= 0) preds.push_back(i);
    std::stable_sort(preds.begin(), preds.end(),
                     [&](size_t x, size_t y) { return g.nodes[x].start < g.nodes[y].start; });
    for (size_t k = 0; k < preds.size(); ++k)
      f.pred_order[static_cast<size_t>(b * N + slot[preds[k]])] = static_cast<int64_t>(k);
  }
  f.adj.resize(f.edge_type.size());
  for (size_t k = 0; k < f.edge_type.size(); ++k) f.adj[k] = f.edge_type[k] != 0;
  return f;
}

}  // namespace finsta_rt
