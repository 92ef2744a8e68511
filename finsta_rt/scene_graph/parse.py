"""The parser entry points: ``parse_text_graph(text, parser=...)`` with ``parser`` in ``PARSERS``.

* ``"rules"``: built in, no dependencies (:mod:`.rules`).
* ``"spacy"``: spaCy + SceneGraphParser (:mod:`.spacy_parser`, ``pip install "finsta-rt[graph]"``).
* ``"auto"``: ``"spacy"`` when those packages import, else ``"rules"``. The choice changes the
  graphs, so training and inference should name the same parser (the choice is logged).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from .graph import TextSceneGraph
from .rules import rule_parse
from .spacy_parser import spacy_available, spacy_parse

log = logging.getLogger(__name__)

PARSERS: tuple[str, ...] = ("auto", "rules", "spacy")


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
