"""Captions of synthetic videos and their two hard negatives (order-swapped, attribute-swapped).

Captions name objects by all three attributes ("a large red circle"), re-mention them as "it" when
the previous phrase named only that object, else as "the large red circle"; the attribute negative
only edits an object named in full once, so neither negative contradicts itself textually (the
order negative says when it is physically impossible: ``OrderNegative.plausible``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .scene import ATTRIBUTES, COLOURS, SHAPES, SIZES, Event, Infeasible, SceneGraph

TEMPLATES: dict[int, tuple[str, ...]] = {
    2: ("{0}, then {1}", "first {0}, after that {1}", "{0}, and then {1}", "first {0}, then {1}"),
    3: (
        "{0}, then {1}, then {2}",
        "first {0}, after that {1}, and finally {2}",
        "{0}, then {1}, and then {2}",
        "first {0}, then {1}, finally {2}",
    ),
}
# the words after "moves {direction}" of each interaction ("moves left past ...")
INTERACTION_WORDS = {"approach": "toward", "pass": "past", "collide": "and hits"}


@dataclass(frozen=True)
class Mention:
    """A noun phrase of the caption that names an object: ``caption[start:end] == text``
    (e.g. "large red circle", without the article) - the grounding target for S-ViLM."""

    object_id: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class OrderNegative:
    """The caption's events told in a different order (``event_order`` indexes graph.events in the
    order they are mentioned); false because every event phrase is true exactly once.

    ``plausible``: the told order could happen in some video (visibility stays consistent). When
    False (e.g. "X moves left, then X appears") the negative is refutable from the text alone, so
    training may want to down-weight it; about 85% are plausible."""

    text: str
    event_order: tuple[int, ...]
    plausible: bool = True


@dataclass(frozen=True)
class AttributeNegative:
    """The caption with one attribute word of one mention replaced (``word_index`` into
    ``caption.split(" ")``); false because no object of the video has the resulting attributes."""

    text: str
    object_id: int
    attribute: str  # size | colour | shape
    old: str
    new: str
    word_index: int


def compose(
    graph: SceneGraph, order: Sequence[int], template: str
) -> tuple[str, list[Mention], list[tuple[int, int, str]]]:
    """Caption text from events in ``order``; also the mentions and attribute-word slots
    (word index, object id, attribute). First mention of an object takes "a"; a re-mention is "it"
    when the previous phrase named only that object (unambiguous), else "the" + its attributes.

    Pronouns matter for the attribute negative: changing one word of one of two full mentions
    ("a large red circle ..., then the large blue circle ...") would be detectable from the text
    alone, so negatives only edit objects named in full exactly once, and "it" keeps those common."""
    objs = graph.objects
    seen: set[int] = set()
    text = ""
    mentions: list[Mention] = []
    slots: list[tuple[int, int, str]] = []
    prev_only: int | None = None  # the object the previous phrase named, if it named just one

    def noun(oid: int) -> None:
        nonlocal text
        if oid in seen and oid == prev_only:
            text += "it"
            return
        text += "the " if oid in seen else "a "
        seen.add(oid)
        start = len(text)
        for attr in ATTRIBUTES:
            slots.append((text.count(" "), oid, attr))
            text += getattr(objs[oid], attr) + (" " if attr != "shape" else "")
        mentions.append(Mention(oid, start, len(text), text[start:]))

    for piece in re.split(r"(\{\d\})", template):
        if not re.fullmatch(r"\{\d\}", piece):
            text += piece
            continue
        e = graph.events[order[int(piece[1:-1])]]
        noun(e.subject)
        if e.kind == "move":
            text += f" moves {e.direction}"
        elif e.kind in INTERACTION_WORDS:
            text += f" moves {e.direction} {INTERACTION_WORDS[e.kind]} "
            assert e.object is not None
            noun(e.object)
        else:
            text += " appears" if e.kind == "appear" else " disappears"
        prev_only = e.subject if e.object is None else None
    return text, mentions, slots


def _plausible(events: Sequence[Event]) -> bool:
    """Could these events happen in this order? Appear needs an invisible object, everything else
    a visible one; each object's initial visibility is free."""
    state: dict[int, bool] = {}
    for e in events:
        if e.kind in ("appear", "disappear"):
            if state.get(e.subject, e.kind == "disappear") != (e.kind == "disappear"):
                return False
            state[e.subject] = e.kind == "appear"
        else:
            for p in (e.subject, e.object):
                if p is not None and not state.setdefault(p, True):
                    return False
    return True


def order_negative(rng: np.random.Generator, graph: SceneGraph, template: str, caption: str) -> OrderNegative:
    """Preferably one swapped adjacent pair (the minimal order change) that could still happen, so the
    negative is only refutable by watching; else any other plausible order; else an adjacent swap."""
    ev, n = graph.events, len(graph.events)
    swaps = []
    for i in range(n - 1):
        order = list(range(n))
        order[i], order[i + 1] = order[i + 1], order[i]
        swaps.append(tuple(order))
    others = [o for o in itertools.permutations(range(n)) if o not in swaps and list(o) != sorted(o)]
    for tier in (swaps, others):
        good = [o for o in tier if _plausible([ev[i] for i in o])]
        if good:
            order, plausible = good[int(rng.integers(len(good)))], True
            break
    else:
        order, plausible = swaps[int(rng.integers(len(swaps)))], False
    text = compose(graph, order, template)[0]
    if text == caption:  # impossible while event phrases are unique; guarded because it must never ship
        raise Infeasible
    return OrderNegative(text, tuple(order), plausible)


def attribute_negative(
    rng: np.random.Generator,
    graph: SceneGraph,
    caption: str,
    mentions: list[Mention],
    slots: list[tuple[int, int, str]],
) -> AttributeNegative:
    values = {"size": list(SIZES), "colour": list(COLOURS), "shape": list(SHAPES)}
    existing = {o.triple for o in graph.objects}
    named = [m.object_id for m in mentions]
    slots = [sl for sl in slots if named.count(sl[1]) == 1]  # see compose: no text-only giveaway
    cands: list[tuple[int, int, str, str]] = []
    for attr in rng.permutation(ATTRIBUTES):  # attribute kind first, so sizes are not under-drawn
        cands = _attribute_candidates(graph, slots, str(attr), values, existing)
        if cands:
            break
    if not cands:
        raise Infeasible
    wi, oid, a, v = cands[int(rng.integers(len(cands)))]
    words = caption.split(" ")
    old = getattr(graph.objects[oid], a)
    assert words[wi].startswith(old)
    words[wi] = v + words[wi][len(old) :]  # keeps a trailing comma after a shape noun
    return AttributeNegative(" ".join(words), oid, a, old, v, wi)


def _attribute_candidates(
    graph: SceneGraph,
    slots: list[tuple[int, int, str]],
    attr: str,
    values: dict[str, list[str]],
    existing: set[tuple[str, str, str]],
) -> list[tuple[int, int, str, str]]:
    cands = []
    for wi, oid, a in slots:
        if a != attr:
            continue
        obj = graph.objects[oid]
        for v in values[a]:
            t = dict(zip(ATTRIBUTES, obj.triple))
            t[a] = v
            new = (t["size"], t["colour"], t["shape"])
            if v != getattr(obj, a) and new not in existing:  # names no object of the video: false
                cands.append((wi, oid, a, v))
    return cands


def duplicate_rate(captions: Sequence[str]) -> float:
    """Fraction of captions that repeat an earlier caption."""
    return 1.0 - len(set(captions)) / len(captions) if captions else 0.0
