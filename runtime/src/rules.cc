// The rule parser: a line-by-line port of finsta_rt/scene_graph/rules.py and lexicon.py's
// tokenize / verb_base / verb_form (see text_graph.h). Python lists that the parser aliases (a
// subject group that is also the last group named) are shared_ptr groups here, so that appending
// to one is seen through every name, as in Python; `list(x)` is a copy.
#include <algorithm>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "finsta_lexicon_tables.h"
#include "finsta_rt/errors.h"
#include "finsta_rt/text_graph.h"
#include "text_graph_internal.h"
#include "utf8.h"

namespace finsta_rt {
namespace lx = lexicon_tables;
namespace {

using WordSet = std::unordered_set<std::string>;

template <size_t N>
WordSet word_set(const char* const (&words)[N]) {
  return WordSet(std::begin(words), std::end(words));
}

struct Lexicon {
  WordSet det = word_set(lx::kDET), num = word_set(lx::kNUM), pron_subj = word_set(lx::kPRON_SUBJ),
          pron_obj = word_set(lx::kPRON_OBJ), pron = word_set(lx::kPRON), rel = word_set(lx::kREL),
          seq = word_set(lx::kSEQ), subord = word_set(lx::kSUBORD), conj = word_set(lx::kCONJ),
          aux = word_set(lx::kAUX), copula = word_set(lx::kCOPULA), prep = word_set(lx::kPREP),
          particle = word_set(lx::kPARTICLE), ly_not_adverb = word_set(lx::kLY_NOT_ADVERB), adj = word_set(lx::kADJ),
          verbs = word_set(lx::kVERBS), not_verb = word_set(lx::kNOT_VERB);
  std::vector<std::vector<std::string>> seq_multi = sequences(lx::kSEQ_MULTI), prep_multi = sequences(lx::kPREP_MULTI);
  std::unordered_map<std::string, std::string> irregular;

  Lexicon() {
    for (const auto& [form, base] : lx::kIRREGULAR) irregular.emplace(form, base);
  }
  template <size_t N>
  static std::vector<std::vector<std::string>> sequences(const char* const (&rows)[N][6]) {
    std::vector<std::vector<std::string>> out;
    for (const auto& row : rows) {
      std::vector<std::string> s;
      for (size_t k = 0; k < 6 && row[k]; ++k) s.emplace_back(row[k]);
      out.push_back(std::move(s));
    }
    return out;
  }
};

const Lexicon& lex() {
  static const Lexicon l;
  return l;
}

template <size_t N>
bool in_ranges(const lx::Range (&table)[N], char32_t cp) {
  const lx::Range* it =
      std::upper_bound(std::begin(table), std::end(table), cp, [](char32_t c, const lx::Range& r) { return c < r.lo; });
  return it != std::begin(table) && cp <= (it - 1)->hi;
}

bool ends_with(const std::string& w, const char* suffix) {
  const std::string s(suffix);
  return w.size() >= s.size() && w.compare(w.size() - s.size(), s.size(), s) == 0;
}

// str.lower() of one character (the full mapping; Python's final-sigma context changes no decision here).
void append_lower(char32_t cp, std::u32string& out) {
  const lx::Lower* it = std::lower_bound(std::begin(lx::kLower), std::end(lx::kLower), cp,
                                         [](const lx::Lower& m, char32_t c) { return m.cp < c; });
  if (it == std::end(lx::kLower) || it->cp != cp) {
    out += cp;
    return;
  }
  out.append(it->out, it->length);
}

struct Tok {
  std::string low;       // lowercased, U+2019 as "'", UTF-8 (the lexicon is ASCII)
  std::u32string low32;  // the same, in code points (for len() and [0])
  int64_t start, end;
};

// lexicon.tokenize: TOKEN_RE = [^\W_]+(?:[-'\u2019][^\W_]+)*|[^\w\s], possessive "'s" split off.
std::vector<Tok> tokenize(const std::u32string& text) {
  auto word = [&](size_t i) { return i < text.size() && in_ranges(lx::kWord, text[i]); };
  std::vector<Tok> out;
  auto push = [&](std::u32string low, int64_t a, int64_t b) {
    Tok t{utf8::encode(low), std::move(low), a, b};
    out.push_back(std::move(t));
  };
  for (size_t i = 0; i < text.size();) {
    size_t j = i;
    if (word(i)) {
      while (word(j)) ++j;
      while (j + 1 < text.size() && (text[j] == U'-' || text[j] == U'\'' || text[j] == U'\u2019') && word(j + 1)) {
        ++j;
        while (word(j)) ++j;
      }
    } else if (in_ranges(lx::kOther, text[i])) {
      j = i + 1;
    } else {
      ++i;
      continue;
    }
    std::u32string low;
    for (size_t k = i; k < j; ++k) append_lower(text[k], low);
    std::replace(low.begin(), low.end(), U'\u2019', U'\'');
    const int64_t a = static_cast<int64_t>(i), n = static_cast<int64_t>(j - i);
    const bool possessive = low.size() >= 2 && low[low.size() - 2] == U'\'' && low.back() == U's';
    if (n > 2 && possessive) {  // possessive / "it's": its own token
      push(low.substr(0, low.size() - 2), a, a + n - 2);
      push(U"'s", a + n - 2, a + n);
    } else {
      push(std::move(low), a, a + n);
    }
    i = j;
  }
  return out;
}

enum class Form { kNone, kBase, k3sg, kIng, kEd };

// lexicon.verb_base: the base of a known verb's inflection. Every candidate keeps a non-ASCII
// character of `w`, and the lexicon is ASCII, so a non-ASCII word is never a verb.
std::optional<std::string> verb_base(const std::string& w) {
  const Lexicon& L = lex();
  if (auto it = L.irregular.find(w); it != L.irregular.end()) return it->second;
  if (L.verbs.count(w)) return w;
  if (!std::all_of(w.begin(), w.end(), [](unsigned char c) { return c < 0x80; })) return std::nullopt;
  std::vector<std::string> cands;
  const size_t n = w.size();
  if (ends_with(w, "ies")) cands.push_back(w.substr(0, n - 3) + "y");
  if (ends_with(w, "es")) cands.push_back(w.substr(0, n - 2));
  if (ends_with(w, "s") && !ends_with(w, "ss")) cands.push_back(w.substr(0, n - 1));
  if (ends_with(w, "ied")) cands.push_back(w.substr(0, n - 3) + "y");
  if (ends_with(w, "ed")) {
    cands.push_back(w.substr(0, n - 2));
    cands.push_back(w.substr(0, n - 1));
    if (n > 4 && w[n - 3] == w[n - 4]) cands.push_back(w.substr(0, n - 3));  // stopped -> stop
  }
  if (ends_with(w, "ing") && n > 4) {
    cands.push_back(w.substr(0, n - 3));
    cands.push_back(w.substr(0, n - 3) + "e");
    if (w[n - 4] == w[n - 5]) cands.push_back(w.substr(0, n - 4));         // running -> run
    if (ends_with(w, "ying")) cands.push_back(w.substr(0, n - 4) + "ie");  // lying -> lie
  }
  for (const auto& c : cands)
    if (L.verbs.count(c)) return c;
  return std::nullopt;
}

Form verb_form(const std::string& w) {
  if (lex().not_verb.count(w)) return Form::kNone;
  const std::optional<std::string> base = verb_base(w);
  if (!base) return Form::kNone;
  if (w == *base) return Form::kBase;
  if (ends_with(w, "ing")) return Form::kIng;
  if (ends_with(w, "s")) return Form::k3sg;
  return Form::kEd;
}

using Group = std::shared_ptr<std::vector<int64_t>>;
Group group_of(std::vector<int64_t> members = {}) { return std::make_shared<std::vector<int64_t>>(std::move(members)); }
bool overlaps(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  return std::any_of(a.begin(), a.end(), [&](int64_t x) { return std::find(b.begin(), b.end(), x) != b.end(); });
}

class RuleParser {
 public:
  explicit RuleParser(const std::u32string& text) : toks_(tokenize(text)) {}

  TextSceneGraph run();

 private:
  const Lexicon& L = lex();
  std::vector<Tok> toks_;
  GraphBuilder b_;
  size_t i_ = 0;
  std::vector<Group> history_;  // entity groups (coordinated NPs), in order of mention
  Group prev_subject_ = group_of(), subject_ = group_of(), last_group_ = group_of();
  std::optional<int64_t> pred_;  // the current predicate (its object slot may be open)
  bool pred_has_obj_ = false, pred_has_particle_ = false;
  std::optional<std::pair<int64_t, int64_t>> pred_span_;
  std::string last_role_;

  static bool in(const WordSet& s, const std::string& w) { return s.count(w) > 0; }
  const std::string& low(int64_t j) const {
    static const std::string empty;
    return j >= 0 && j < static_cast<int64_t>(toks_.size()) ? toks_[static_cast<size_t>(j)].low : empty;
  }
  const Tok& tok(int64_t j) const { return toks_.at(static_cast<size_t>(j)); }
  bool adverb_ly(int64_t j) const {  // w.endswith("ly") and len(w) > 3 and w not in LY_NOT_ADVERB
    const std::string& w = low(j);
    return ends_with(w, "ly") && tok(j).low32.size() > 3 && !in(L.ly_not_adverb, w);
  }

  int64_t match(int64_t j, const std::vector<std::vector<std::string>>& seqs) const {
    int64_t best = 0;
    for (const auto& s : seqs) {
      if (static_cast<int64_t>(s.size()) <= best) continue;
      bool all = true;
      for (size_t k = 0; all && k < s.size(); ++k) all = low(j + static_cast<int64_t>(k)) == s[k];
      if (all) best = static_cast<int64_t>(s.size());
    }
    return best;
  }
  bool is_punct(int64_t j) const {
    const std::string& w = low(j);
    return !w.empty() && !in_ranges(lx::kAlnum, tok(j).low32[0]) && w != "'s";
  }
  int64_t is_seq(int64_t j, bool clause_start) const {
    if (int64_t n = match(j, L.seq_multi)) return n;
    const std::string& w = low(j);
    if (in(L.seq, w) && !((w == "first" || w == "next") && (low(j + 1) == "to" || low(j + 1) == "of"))) return 1;
    if (in(L.subord, w) && (clause_start || starts_clause(j + 1))) return 1;
    return 0;
  }
  int64_t is_prep(int64_t j) const {
    if (int64_t n = match(j, L.prep_multi)) return n;
    return in(L.prep, low(j)) ? 1 : 0;
  }
  bool is_verb_start(int64_t j) const {
    const std::string& w = low(j);
    return in(L.aux, w) || (w == "'s" && in(L.pron, low(j - 1))) || verb_form(w) != Form::kNone;
  }
  bool starts_np(int64_t j) const {
    const std::string& w = low(j);
    if (w.empty() || is_punct(j) || in(L.conj, w) || in(L.pron, w) || in(L.rel, w) || in(L.aux, w) || w == "'s")
      return false;
    if (in(L.det, w) || in(L.num, w) || in_ranges(lx::kDigit, tok(j).low32[0])) return true;
    if (is_prep(j) || (in(L.particle, w) && !in(L.adj, w))) return false;
    const Form f = verb_form(w);
    return f == Form::kNone || f == Form::kIng || in(L.adj, w);
  }
  bool starts_clause(int64_t j) const {
    if (in(L.pron_subj, low(j))) return is_verb_start(j + 1);
    if (!starts_np(j)) return false;
    const int64_t end = scan_np(j);
    return end > j && is_verb_start(end);
  }

  int64_t scan_np(int64_t j) const;
  std::optional<std::pair<int64_t, int64_t>> parse_np(int64_t j);  // (object node, end token)
  Group resolve(const std::string& w, bool as_subject) const;
  void end_clause() {
    if (!subject_->empty()) prev_subject_ = subject_;
    subject_ = group_of();
    close_pred();
  }
  void close_pred() {
    pred_.reset();
    pred_has_obj_ = pred_has_particle_ = false;
    pred_span_.reset();
  }
  void add_group(const Group& group, const std::string& role) {
    if (group->empty()) return;
    history_.push_back(group);
    last_group_ = group;
    last_role_ = role;
  }
  void attach(const Group& group);
  std::tuple<int64_t, bool, bool> parse_vg(int64_t j) const;
  bool starts_np_or_pron(int64_t j) const { return in(L.pron_obj, low(j)) || low(j) == "they" || starts_np(j); }
  int64_t copula_attributes(int64_t j);
  void new_pred(int64_t a, int64_t b, const Group& subj, bool particle) {
    pred_ = b_.node(NodeKind::kPredicate, a, b);
    pred_span_ = {a, b};
    pred_has_obj_ = false;
    pred_has_particle_ = particle;
    for (int64_t s : *subj) b_.edge(s, *pred_, EdgeKind::kSubj);
  }
  void extend_pred(int64_t a, int64_t b) {
    b_.nodes[static_cast<size_t>(*pred_)] = {NodeKind::kPredicate, a, b};
    pred_span_ = {a, b};
  }
  void coordinate(int64_t obj);
  void replace_last(int64_t obj);
};

int64_t RuleParser::scan_np(int64_t j) const {
  int64_t k = j, content = 0;
  const int64_t n = static_cast<int64_t>(toks_.size());
  while (k < n) {
    const std::string& w = low(k);
    if (is_punct(k) || in(L.conj, w) || in(L.pron, w) || in(L.rel, w) || w == "'s" || in(L.aux, w) ||
        (in(L.subord, w) && !in(L.prep, w)) || match(k, L.seq_multi))
      break;
    if (in(L.det, w)) {
      if (content || k > j) break;
      ++k;
      continue;
    }
    if (content) {
      if ((is_prep(k) && !in(L.adj, w)) || (in(L.particle, w) && !in(L.adj, w))) break;
      if (w == "that") break;
      const Form form = verb_form(w);
      const std::string& nxt = low(k + 1);
      if ((form == Form::k3sg || form == Form::kEd) && !in(L.adj, w)) break;
      if ((form == Form::kBase || form == Form::kIng) && !in(L.adj, w)) {
        // a verb when an object or a particle follows ("two dogs chase a cat"), or when it ends
        // the clause after a plural ("two dogs run."); a noun otherwise ("a red circle,")
        const bool takes = in(L.det, nxt) || is_prep(k + 1) || in(L.particle, nxt) || in(L.pron, nxt);
        const bool ends = nxt.empty() || is_punct(k + 1) || in(L.conj, nxt);
        const std::string& prev = low(k - 1);
        const bool plural = ends_with(prev, "s") && !ends_with(prev, "ss");
        if (takes || (ends && (form == Form::kIng || plural))) break;
      }
      if (in(L.seq, w) && !in(L.adj, w)) break;
    } else if ((is_prep(k) && !in(L.adj, w)) || (in(L.particle, w) && !in(L.adj, w))) {
      break;
    }
    ++content;
    ++k;
  }
  return content ? k : j;
}

std::optional<std::pair<int64_t, int64_t>> RuleParser::parse_np(int64_t j) {
  const int64_t end = scan_np(j);
  if (end == j) return std::nullopt;
  std::vector<int64_t> words;
  for (int64_t k = j; k < end; ++k)
    if (!in(L.det, low(k))) words.push_back(k);
  const int64_t head = words.back();
  const int64_t obj = b_.node(NodeKind::kObject, tok(head).start, tok(head).end);
  for (size_t x = 0; x + 1 < words.size(); ++x) {
    const int64_t k = words[x];
    if (adverb_ly(k)) continue;  // an adverb grading the next modifier ("unbelievably tiny")
    const int64_t att = b_.node(NodeKind::kAttribute, tok(k).start, tok(k).end);
    b_.edge(obj, att, EdgeKind::kAttr);
  }
  return std::make_pair(obj, end);
}

Group RuleParser::resolve(const std::string& w, bool as_subject) const {
  const std::vector<int64_t>& exclude = *subject_;
  const bool plural = w == "they" || w == "them" || w == "themselves";
  if (as_subject || plural || w == "he" || w == "she" || w == "we") {
    // a subject pronoun continues the previous clause's subject; so does a plural object
    // pronoun when that subject is not this clause's ("..., while a dog follows them")
    if (!prev_subject_->empty() && (as_subject || !overlaps(*prev_subject_, exclude))) return group_of(*prev_subject_);
  }
  for (auto it = history_.rbegin(); it != history_.rend(); ++it)
    if (!overlaps(**it, exclude)) return plural ? group_of(**it) : group_of({(*it)->back()});
  return group_of();
}

void RuleParser::attach(const Group& group) {
  if (pred_ && !pred_has_obj_) {
    for (int64_t o : *group) b_.edge(*pred_, o, EdgeKind::kObj);
    pred_has_obj_ = true;
    add_group(group, "obj");
  } else if (subject_->empty() && !pred_) {
    subject_ = group_of(*group);
    add_group(group, "subj");
  } else {  // a stray NP after a complete clause: keep it as an entity
    add_group(group, "obj");
  }
}

std::tuple<int64_t, bool, bool> RuleParser::parse_vg(int64_t j) const {
  int64_t k = j;
  while (in(L.aux, low(k)) || low(k) == "'s") ++k;
  while (in(L.particle, low(k)) && verb_form(low(k + 1)) != Form::kNone && !in(L.prep, low(k))) ++k;
  if (verb_form(low(k)) != Form::kNone && !in(L.aux, low(k))) ++k;
  bool particle = false;
  while (true) {
    const int64_t n = in(L.particle, low(k)) ? 0 : is_prep(k);
    if (n) return {k + n, true, particle};
    const std::string& w = low(k);
    if (in(L.particle, w) || (!w.empty() && adverb_ly(k))) {
      // a particle that is also a preposition takes the NP after it ("walks down the street")
      if (in(L.prep, w) && starts_np_or_pron(k + 1)) return {k + 1, true, particle};
      particle = true;
      ++k;
      continue;
    }
    break;
  }
  return {k, starts_np_or_pron(k), particle};
}

int64_t RuleParser::copula_attributes(int64_t j) {
  int64_t k = j;
  while (in(L.copula, low(k))) ++k;
  if (k == j || !in(L.adj, low(k))) return 0;
  int64_t e = k;
  while (in(L.adj, low(e)) || ((low(e) == "and" || low(e) == ",") && in(L.adj, low(e + 1)))) ++e;
  if (!low(e).empty() && !(is_punct(e) || is_seq(e, true) || in(L.conj, low(e))))
    return 0;  // "is small ball ..." or similar: not a predicative adjective
  for (int64_t t = k; t < e; ++t) {
    if (!in(L.adj, low(t))) continue;
    const Group owners = !subject_->empty() ? subject_ : prev_subject_;
    for (int64_t o : *owners) b_.edge(o, b_.node(NodeKind::kAttribute, tok(t).start, tok(t).end), EdgeKind::kAttr);
  }
  return e - j;
}

void RuleParser::coordinate(int64_t obj) {
  const Group group = last_group_;
  const int64_t ref = group->front();
  const std::vector<GraphEdge> edges = b_.edges;  // list(self.b.edges): a snapshot
  for (const GraphEdge& e : edges) {
    if (e.target == ref && e.kind == EdgeKind::kObj) b_.edge(e.source, obj, EdgeKind::kObj);
    if (e.source == ref && e.kind == EdgeKind::kSubj) b_.edge(obj, e.target, EdgeKind::kSubj);
  }
  group->push_back(obj);
  if (last_role_ == "subj" && subject_ != group) subject_ = group;
}

void RuleParser::replace_last(int64_t obj) {
  const Group owner = last_group_;
  add_group(group_of({obj}), last_role_.empty() ? "obj" : last_role_);
  if (subject_ == owner || *subject_ == *owner) subject_ = group_of({obj});
}

TextSceneGraph RuleParser::run() {
  bool clause_start = true;
  std::optional<Group> rel_subject;
  const int64_t n_toks = static_cast<int64_t>(toks_.size());
  while (static_cast<int64_t>(i_) < n_toks) {
    const int64_t i = static_cast<int64_t>(i_);
    const std::string w = low(i);
    if (int64_t n = is_seq(i, clause_start)) {
      end_clause();
      i_ = static_cast<size_t>(i + n);
      clause_start = true;
      continue;
    }
    if (is_punct(i)) {
      if (std::string(",;.!?:").find(w) != std::string::npos && !(!pred_ && !subject_->empty() && w == ",")) {
        end_clause();
        clause_start = true;
      }
      ++i_;
      continue;
    }
    if (in(L.conj, w)) {
      i_ = static_cast<size_t>(i + 1);
      const int64_t nxt = i + 1;
      if (is_verb_start(nxt) && !starts_np(nxt)) {
        // "X moves right and hits Y": one event when a directed motion leads into a transitive
        // verb; "X sits and reads Y": a second predicate of the same subject.
        const auto [end, takes_np, particle] = parse_vg(nxt);
        (void)particle;
        if (pred_ && !pred_has_obj_ && pred_has_particle_ && takes_np) {
          extend_pred(pred_span_->first, tok(end - 1).end);
          i_ = static_cast<size_t>(end);
          continue;
        }
        const Group subj = !subject_->empty() ? subject_ : prev_subject_;
        close_pred();
        subject_ = subj;
        continue;
      }
      if (starts_clause(nxt) && !(!pred_ && !subject_->empty())) {
        // "..., and a dog barks": a new clause; but "a man and a woman walk": one subject
        end_clause();
        clause_start = true;
        continue;
      }
      // coordination of noun phrases: the next NP takes the role of the last one
      if (starts_np(nxt) && !last_group_->empty()) {
        if (auto got = parse_np(nxt)) {
          coordinate(got->first);
          i_ = static_cast<size_t>(got->second);
        }
      }
      continue;
    }
    if (in(L.rel, w) || (w == "that" && i > 0 && is_verb_start(i + 1))) {
      rel_subject = group_of(*last_group_);
      ++i_;
      continue;
    }
    if (w == "'s" && !in(L.pron, low(i - 1))) {  // possessive: owner -'s-> owned
      const int64_t pred = b_.node(NodeKind::kPredicate, tok(i).start, tok(i).end);
      for (int64_t o : *last_group_) b_.edge(o, pred, EdgeKind::kSubj);
      if (auto got = parse_np(i + 1)) {
        b_.edge(pred, got->first, EdgeKind::kObj);
        replace_last(got->first);
        i_ = static_cast<size_t>(got->second);
      } else {
        ++i_;
      }
      continue;
    }
    if (in(L.pron, w) && !(w == "her" && starts_np(i + 1) && !in(L.pron, low(i + 1)))) {
      const Group group = resolve(w, !pred_ && subject_->empty());
      if (!group->empty()) attach(group);
      ++i_;
      clause_start = false;
      continue;
    }
    if (!pred_ && subject_->empty() && in(L.copula, low(i)) && low(i + 1) == "there") {
      i_ += 2;  // "there is a ..."
      continue;
    }
    const Form wf = verb_form(w);
    if (is_verb_start(i) && !(starts_np(i) && subject_->empty() && !pred_ && (wf == Form::kBase || wf == Form::kIng))) {
      if (int64_t n = copula_attributes(i)) {
        i_ = static_cast<size_t>(i + n);
        continue;
      }
      auto [end, takes_np, particle] = parse_vg(i);
      (void)takes_np;
      if (end == i) end = i + 1;
      const Group subj = rel_subject ? *rel_subject : (!subject_->empty() ? subject_ : prev_subject_);
      if (!rel_subject && subject_->empty()) subject_ = group_of(*subj);
      rel_subject.reset();
      new_pred(tok(i).start, tok(end - 1).end, subj, particle);
      i_ = static_cast<size_t>(end);
      clause_start = false;
      continue;
    }
    const int64_t n = is_prep(i);
    if (n && starts_np_or_pron(i + n)) {
      // a prepositional phrase: "of" binds to the noun before it, others to the clause subject
      // after a verb ("rides a bike down a street": man -down-> street)
      const Group owners = (w == "of" || !pred_) ? last_group_ : (!subject_->empty() ? subject_ : last_group_);
      const int64_t pred = b_.node(NodeKind::kPredicate, tok(i).start, tok(i + n - 1).end);
      for (int64_t o : *owners) b_.edge(o, pred, EdgeKind::kSubj);
      i_ = static_cast<size_t>(i + n);
      const int64_t at = static_cast<int64_t>(i_);
      if (in(L.pron, low(at))) {
        const Group group = resolve(low(at), false);
        for (int64_t o : *group) b_.edge(pred, o, EdgeKind::kObj);
        ++i_;
        continue;
      }
      if (auto got = parse_np(at)) {
        b_.edge(pred, got->first, EdgeKind::kObj);
        add_group(group_of({got->first}), "pobj");
        i_ = static_cast<size_t>(got->second);
      }
      continue;
    }
    if (starts_np(i)) {
      if (auto got = parse_np(i)) {
        attach(group_of({got->first}));
        i_ = static_cast<size_t>(got->second);
        clause_start = false;
        continue;
      }
    }
    ++i_;  // a word no rule uses (an adverb, "there", a stray preposition)
  }
  return b_.build();
}

}  // namespace

bool is_blank(const std::u32string& text) {
  return std::all_of(text.begin(), text.end(), [](char32_t c) { return in_ranges(lx::kSpace, c); });
}

TextSceneGraph rule_parse_codepoints(const std::u32string& text) {
  if (is_blank(text)) throw InputError("cannot parse a scene graph from an empty text");
  return RuleParser(text).run();
}

}  // namespace finsta_rt
