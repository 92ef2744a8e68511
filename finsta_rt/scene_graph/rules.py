"""The built-in rule-based parser (no dependencies): a lexicon-and-pattern chunker for the short,
literal captions of video-language data.

Noun phrases (determiners dropped, modifiers become attribute nodes, the last word is the object),
verb groups (auxiliaries, verb, direction particles, adverbs and a trailing preposition: "moves left
past" is one predicate), prepositional phrases as predicates ("a man in a red shirt": man -> "in" ->
shirt), sequence words and clause boundaries ("first", "then", "after that", "and then", "finally",
"while", commas), coordination ("a man and a woman", "... and hits ..."), elided and pronoun subjects
("it", "they": the previous clause's subject; "it" as an object: the latest entity that is not the
current subject).
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import GraphBuilder, GraphNode, TextSceneGraph, check_text
from .lexicon import (
    ADJ,
    AUX,
    CONJ,
    COPULA,
    DET,
    LY_NOT_ADVERB,
    NUM,
    PARTICLE,
    PREP,
    PREP_MULTI,
    PRON,
    PRON_OBJ,
    PRON_SUBJ,
    REL,
    SEQ,
    SEQ_MULTI,
    SUBORD,
    tokenize,
    verb_form,
)


@dataclass
class _NP:
    obj: int  # object node
    start: int  # token range
    end: int


class _RuleParser:
    """One pass over the tokens with a little look-ahead; see the module docstring for the rules."""

    def __init__(self, text: str):
        self.text = text
        self.toks = tokenize(text)
        self.b = GraphBuilder(text, "rules")
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
        n = self.match(j, SEQ_MULTI)
        if n:
            return n
        w = self.low(j)
        if w in SEQ and not (w in ("first", "next") and self.low(j + 1) in ("to", "of")):
            return 1
        if w in SUBORD and (clause_start or self.starts_clause(j + 1)):
            return 1
        return 0

    def is_prep(self, j: int) -> int:
        n = self.match(j, PREP_MULTI)
        if n:
            return n
        return 1 if self.low(j) in PREP else 0

    def is_verb_start(self, j: int) -> bool:
        w = self.low(j)
        return w in AUX or w == "'s" and self.low(j - 1) in PRON or verb_form(w) is not None

    def starts_np(self, j: int) -> bool:
        w = self.low(j)
        if not w or self.is_punct(j) or w in CONJ or w in PRON or w in REL or w in AUX or w == "'s":
            return False
        if w in DET or w in NUM or w[0].isdigit():
            return True
        if self.is_prep(j) or w in PARTICLE and w not in ADJ:
            return False
        return verb_form(w) in (None, "ing") or w in ADJ

    def starts_clause(self, j: int) -> bool:
        """An NP (or subject pronoun) followed by a verb group starts at j."""
        if self.low(j) in PRON_SUBJ:
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
            if (
                self.is_punct(k)
                or w in CONJ
                or w in PRON
                or w in REL
                or w == "'s"
                or w in AUX
                or w in SUBORD
                and w not in PREP
                or self.match(k, SEQ_MULTI)
            ):
                break
            if w in DET:
                if content or k > j:
                    break
                k += 1
                continue
            if content:
                if self.is_prep(k) and w not in ADJ or w in PARTICLE and w not in ADJ:
                    break
                if w == "that":
                    break
                form = verb_form(w)
                nxt = self.low(k + 1)
                if form in ("3sg", "ed") and w not in ADJ:
                    break
                if form in ("base", "ing") and w not in ADJ:
                    # a verb when an object or a particle follows ("two dogs chase a cat"), or when it
                    # ends the clause after a plural ("two dogs run."); a noun otherwise ("a red circle,")
                    takes = nxt in DET or bool(self.is_prep(k + 1)) or nxt in PARTICLE or nxt in PRON
                    ends = not nxt or self.is_punct(k + 1) or nxt in CONJ
                    prev = self.low(k - 1)
                    plural = prev.endswith("s") and not prev.endswith("ss")
                    if takes or ends and (form == "ing" or plural):
                        break
                if w in SEQ and w not in ADJ:
                    break
            elif self.is_prep(k) and w not in ADJ or (w in PARTICLE and w not in ADJ):
                break
            content += 1
            k += 1
        return k if content else j

    def parse_np(self, j: int) -> tuple[_NP, int] | None:
        end = self.scan_np(j)
        if end == j:
            return None
        words = [k for k in range(j, end) if self.low(k) not in DET]
        head = words[-1]
        obj = self.b.node("object", self.toks[head].start, self.toks[head].end)
        for k in words[:-1]:
            w = self.low(k)
            if w.endswith("ly") and len(w) > 3 and w not in LY_NOT_ADVERB:
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
        while self.low(k) in AUX or self.low(k) == "'s":
            k += 1
        while self.low(k) in PARTICLE and verb_form(self.low(k + 1)) is not None and self.low(k) not in PREP:
            k += 1  # "slowly moves"
        if verb_form(self.low(k)) is not None and self.low(k) not in AUX:
            k += 1
        particle = False
        while True:
            n = self.is_prep(k) if self.low(k) not in PARTICLE else 0
            if n:
                return k + n, True, particle
            w = self.low(k)
            if w in PARTICLE or (w.endswith("ly") and len(w) > 3 and w not in LY_NOT_ADVERB):
                # a particle that is also a preposition takes the NP after it ("walks down the street")
                if w in PREP and self.starts_np_or_pron(k + 1):
                    return k + 1, True, particle
                particle, k = True, k + 1
                continue
            break
        return k, self.starts_np_or_pron(k), particle

    def starts_np_or_pron(self, j: int) -> bool:
        return self.low(j) in PRON_OBJ or self.low(j) in ("they",) or self.starts_np(j)

    def copula_attributes(self, j: int) -> int:
        """ "is red (and shiny)": attribute nodes on the subject; returns the tokens consumed (0 if not)."""
        k = j
        while self.low(k) in COPULA:
            k += 1
        if k == j or self.low(k) not in ADJ:
            return 0
        e = k
        while self.low(e) in ADJ or self.low(e) in ("and", ",") and self.low(e + 1) in ADJ:
            e += 1
        if self.low(e) and not (self.is_punct(e) or self.is_seq(e, True) or self.low(e) in CONJ):
            return 0  # "is small ball ..." or similar: not a predicative adjective
        for t in range(k, e):
            if self.low(t) in ADJ:
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
            if w in CONJ:
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
            if w in REL or (w == "that" and i > 0 and self.is_verb_start(i + 1)):
                rel_subject = list(self.last_group)
                self.i += 1
                continue
            if w == "'s" and self.low(i - 1) not in PRON:  # possessive: owner -'s-> owned
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
            if w in PRON and not (w == "her" and self.starts_np(i + 1) and self.low(i + 1) not in PRON):
                group = self.resolve(w, as_subject=self.pred is None and not self.subject)
                if group:
                    self.attach(group)
                self.i += 1
                clause_start = False
                continue
            if self.pred is None and not self.subject and self.low(i) in COPULA and self.low(i + 1) == "there":
                self.i += 2  # "there is a ..."
                continue
            if self.is_verb_start(i) and not (
                self.starts_np(i) and not self.subject and self.pred is None and verb_form(w) in ("base", "ing")
            ):
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
                if self.low(self.i) in PRON:
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
    check_text(text)
    return _RuleParser(text).run()
