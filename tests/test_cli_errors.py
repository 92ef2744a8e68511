"""Every finsta-rt command refuses a bad bundle, video, folder or option with exit status 2 and one
line on stderr (no traceback), and prints any text safely: control characters and ANSI escapes
escaped, undecodable argv bytes shown as \\xNN, whatever the encoding of stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from media import moving_frames, write_video
from test_bundle_schema import fake_bundle

from finsta_rt.cli import main as cli


def _empty_yaml(d: Path) -> Path:
    return fake_bundle(d, raw="")


def _bad_types(d: Path) -> Path:
    return fake_bundle(d, lambda m: m["graphs"]["video"]["inputs"][0].update(shape=5))


def _alias(d: Path) -> Path:
    return fake_bundle(d, raw="a: &x [1]\nb: *x\n")


def _deep(d: Path) -> Path:
    return fake_bundle(d, raw="[" * 100_000)


def _missing_file(d: Path) -> Path:
    b = fake_bundle(d)
    (b / "text.onnx").unlink()
    return b


def _bad_sha256(d: Path) -> Path:
    b = fake_bundle(d)
    (b / "vocab.txt").write_bytes(b"altered\n")
    return b


def _not_onnx(d: Path) -> Path:  # a valid manifest, files that pass their sha256, but no ONNX inside
    return fake_bundle(d)


def _no_dir(d: Path) -> Path:
    return d / "nowhere"


def _manifest_is_a_directory(d: Path) -> Path:
    b = fake_bundle(d)
    (b / "bundle.yaml").unlink()
    (b / "bundle.yaml").mkdir()
    return b


REFUSED = {
    "empty_yaml": (_empty_yaml, "expected a mapping"),
    "bad_types": (_bad_types, "graphs.video.inputs[0].shape"),
    "alias": (_alias, "alias"),
    "deep_nesting": (_deep, "nested deeper"),
    "missing_file": (_missing_file, "text.onnx is missing"),
    "bad_sha256": (_bad_sha256, "sha256 check"),
    "not_onnx": (_not_onnx, "not a valid ONNX model"),  # the loaders' model check reads it first
    "no_dir": (_no_dir, "does not exist"),
    "manifest_is_a_directory": (_manifest_is_a_directory, "bundle.yaml is missing"),
}


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "a.mp4", moving_frames(8), fps=8)


def _argv(command: str, bundle: Path, video: Path, tmp: Path) -> list[str]:
    return {
        "info": ["info", str(bundle)],
        "embed-text": ["embed-text", str(bundle), "a dog"],
        "score": ["score", str(bundle), "--video", str(video), "--text", "a dog"],
        "extract": ["extract", str(bundle), str(video), "-o", str(tmp / "out"), "-q"],
        "bench": ["bench", str(bundle), str(video)],
        "ground": ["ground", str(bundle), "--video", str(video), "--text", "a dog", "-o", str(tmp / "g")],
        "scenes": ["scenes", str(bundle), "--video", str(video)],
    }[command]


def assert_one_line_error(rc: int, err: str, command: str, message: str) -> None:
    assert rc == 2, (rc, err)
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("extracting ")]
    assert len(lines) == 1 and lines[0].startswith(f"finsta-rt {command}: "), err
    assert message in lines[0], (message, err)


COMMANDS = ["info", "embed-text", "score", "extract", "bench", "ground", "scenes"]


@pytest.mark.parametrize(
    "command, case", [(c, k) for c in COMMANDS for k in REFUSED if (c, k) != ("info", "not_onnx")]
)  # info opens no ONNX file
def test_refused_bundle_exits_2_with_one_line(tmp_path, video, capsys, command, case):
    make, message = REFUSED[case]
    bundle = make(tmp_path / "b")
    rc = cli(_argv(command, bundle, video, tmp_path))
    assert_one_line_error(rc, capsys.readouterr().err, command, message)


def test_a_real_process_prints_no_traceback(tmp_path):
    bundle = _empty_yaml(tmp_path / "b")
    proc = subprocess.run(
        [sys.executable, "-m", "finsta_rt.cli", "embed-text", str(bundle), "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(proc.returncode, proc.stderr, "embed-text", "expected a mapping")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["extract", "{bundle}", "{video}", "-o", "{tmp}/o", "--sampling", "uniform:x"], "not a number"),
        (["extract", "{bundle}", "{video}", "-o", "{tmp}/o", "--batch-size", "0"], "--batch-size"),
        (["extract", "{bundle}", "{video}", "-o", "{tmp}/o", "--device", "tpu"], "device must be"),
        (["score", "{bundle}", "--video", "{video}", "--text", "x", "--sampling", "every:0"], "whole number"),
        (["search", "{tmp}/nothing", "--text", "x"], "not an extraction folder"),
        (["search", "{video}", "--video", "x"], "not an extraction folder"),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path, video, capsys, argv, message):
    bundle = _not_onnx(tmp_path / "b")
    argv = [a.format(bundle=bundle, video=video, tmp=tmp_path) for a in argv]
    rc = cli(argv)
    assert_one_line_error(rc, capsys.readouterr().err, argv[0], message)


# ----------------------------------------------------------------------------- safe text output
HOSTILE = b"caf\xff \x1b[31mred\x1b[0m \x07bell\rback \xe2\x80\xaeevil"  # bad UTF-8, ANSI, BEL, CR, RTL override


@pytest.mark.parametrize("encoding", ["utf-8:strict", "ascii:strict", "latin-1:strict"])
def test_score_prints_hostile_text_safely(tiny_bundles, video, encoding):
    bundle = str(tiny_bundles[3]["custom"])
    env = {**os.environ, "PYTHONIOENCODING": encoding, "LC_ALL": "C.UTF-8"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "finsta_rt.cli",
            "score",
            bundle,
            "--video",
            str(video),
            "--text",
            HOSTILE,
            "--text",
            "a plain text",
            "--device",
            "cpu",
        ],
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out = proc.stdout
    for raw in (b"\x1b", b"\x07", b"\r", b"\xff", "\u202e".encode()):
        assert raw not in out, (raw, out)
    assert b"caf\\xff \\x1b[31mred\\x1b[0m \\x07bell\\rback \\u202eevil" in out, out
    assert b"a plain text" in out


def test_embed_text_json_keeps_hostile_text_exact(tiny_bundles):
    """JSON output escapes by itself: the text comes back exactly (undecodable bytes as surrogates)."""
    import json

    bundle = str(tiny_bundles[3]["custom"])
    env = {**os.environ, "PYTHONIOENCODING": "ascii:strict", "LC_ALL": "C.UTF-8"}
    proc = subprocess.run(
        [sys.executable, "-m", "finsta_rt.cli", "embed-text", bundle, HOSTILE, "--device", "cpu"],
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    row = json.loads(proc.stdout)
    assert row["text"] == os.fsdecode(HOSTILE) and len(row["embedding"]) == 32


def test_error_messages_escape_file_names(tmp_path, capsys):
    name = tmp_path / "evil\x1b[2Jname"
    rc = cli(["info", str(name)])
    err = capsys.readouterr().err
    assert rc == 2 and "\x1b" not in err and "evil\\x1b[2Jname" in err


def test_extract_log_lines_escape_file_names(tiny_bundles, tmp_path):
    bad = tmp_path / "evil\x1b[31mname.mp4"
    bad.write_bytes(b"\0" * 100)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "finsta_rt.cli",
            "extract",
            str(tiny_bundles[3]["custom"]),
            str(bad),
            "-o",
            str(tmp_path / "out"),
            "-q",
            "--device",
            "cpu",
        ],
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert b"\x1b" not in proc.stderr and b"evil\\x1b[31mname.mp4: not a readable video" in proc.stderr, proc.stderr
