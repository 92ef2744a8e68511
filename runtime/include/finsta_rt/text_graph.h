// Textual scene graphs (Finsta, docs/families.md): the built-in rule parser and the padded tensors
// a Finsta text graph reads, ports of finsta_rt/scene_graph (rules.py, lexicon.py, graph.py and
// encode.py's text_graph_feed), so that both runtimes feed the same tensors for the same text. The
// lexicon is generated at build time from lexicon.py (runtime/tools/gen_lexicon_tables.py).
//
// Offsets are character (Unicode code point) offsets into the caption, as Python str indices.
// Pure functions of their arguments: safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "finsta_rt/export.h"
#include "finsta_rt/tokenizer.h"

namespace finsta_rt {

enum class NodeKind : uint8_t { kObject = 0, kAttribute = 1, kPredicate = 2 };  // NODE_KINDS order
enum class EdgeKind : uint8_t {
  kSubj,
  kObj,
  kAttr
};  // subj: object -> predicate, obj: predicate ->
    // object, attr: object -> attribute

struct FINSTA_RT_API GraphNode {
  NodeKind kind;
  int64_t start, end;  // character span in the caption
};

struct FINSTA_RT_API GraphEdge {
  int64_t source, target;
  EdgeKind kind;
};

struct FINSTA_RT_API TextSceneGraph {
  std::vector<GraphNode> nodes;  // caption order (start, then kind)
  std::vector<GraphEdge> edges;  // sorted by (source, target, kind name)
};

// "object", "attribute", "predicate"; "subj", "obj", "attr".
FINSTA_RT_API const char* kind_name(NodeKind kind);
FINSTA_RT_API const char* kind_name(EdgeKind kind);

// The rule parser (finsta_rt.scene_graph.rule_parse). Throws InputError for invalid UTF-8 or a
// text of only whitespace ("cannot parse a scene graph from an empty text").
FINSTA_RT_API TextSceneGraph rule_parse(std::string_view text);

// What a text graph that takes scene graphs is fed (encode.py's tensor contract), row-major; B
// texts, L = the longest token row, N = max_nodes. Booleans are 0/1 bytes.
struct FINSTA_RT_API TextGraphFeed {
  int64_t texts = 0, tokens = 0, nodes = 0;        // B, L, N
  std::vector<int64_t> input_ids, attention_mask;  // [B, L]
  std::vector<int64_t> node_span;                  // [B, N, 2] token [start, end); padding (0, 1)
  std::vector<int64_t> node_type;                  // [B, N] 0 padding, 1 object, 2 attribute, 3 predicate
  std::vector<uint8_t> node_mask;                  // [B, N]
  std::vector<uint8_t> adj;                        // [B, N, N] edge_type != 0
  std::vector<int64_t> edge_type;                  // [B, N, N] 0 none, 1 self, 2..4 edges, 5..7 reversed
  std::vector<int64_t> pred_order;                 // [B, N] predicates in caption order, -1 otherwise
};

// text_graph_feed(texts, tokenizer, max_nodes, "rules"): the texts tokenized (padded to the
// longest) and parsed with rule_parse, nodes past the truncated tokens dropped, the first
// max_nodes nodes kept. Throws InputError naming the text ("texts[2] is empty: no scene graph to
// encode") for an empty or whitespace-only text or invalid UTF-8, and for max_nodes < 1.
FINSTA_RT_API TextGraphFeed text_graph_feed(const std::vector<std::string>& texts, const WordPieceTokenizer& tokenizer,
                                            int64_t max_nodes);

}  // namespace finsta_rt
