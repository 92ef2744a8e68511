// What rules.cc and text_graph.cc share: the graph builder (graph.py's GraphBuilder). Internal.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "finsta_rt/text_graph.h"

namespace finsta_rt {

// Collects nodes and edges; dedupes edges; sorts nodes into caption order at the end.
struct GraphBuilder {
  std::vector<GraphNode> nodes;
  std::vector<GraphEdge> edges;  // insertion-ordered, no duplicates

  int64_t node(NodeKind kind, int64_t start, int64_t end);
  void edge(int64_t source, int64_t target, EdgeKind kind);
  TextSceneGraph build() const;
};

// Whether every character is whitespace (str.isspace), so that str.strip() leaves nothing.
bool is_blank(const std::u32string& text);
// rule_parse on decoded text.
TextSceneGraph rule_parse_codepoints(const std::u32string& text);

}  // namespace finsta_rt
