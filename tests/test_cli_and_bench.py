"""The finsta-rt command line and the benchmark script run and say useful things."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from finsta_rt import cli

ROOT = Path(__file__).resolve().parents[1]


def test_ops_command_lists_libraries(capsys):
    assert cli.main(["ops"]) == 0
    out = capsys.readouterr().out
    assert "libfinsta_ops.so" in out and "STGraphAttention" in out and "CPUExecutionProvider" in out


def test_ops_command_fails_when_library_missing(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("FINSTA_OPS_DIR", str(tmp_path))
    assert cli.main(["ops"]) == 1
    assert "make ops" in capsys.readouterr().out


def test_bench_ops_prints_a_table():
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_ops.py"),
            "--shape",
            "1,2,3,4,8,6",
            "--runs",
            "2",
            "--warmup",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [l for l in proc.stdout.splitlines() if l.startswith("1,2,3,4,8,6")]
    assert [l.split()[1] for l in lines] == ["custom", "portable", "torch"], proc.stdout
    # every method agrees with the custom kernel on the same inputs (the column named so in the table's header)
    header = next(l for l in proc.stdout.splitlines() if l.split()[:2] == ["B,H,T,P,d,D", "method"])
    col = re.split(r"\s{2,}", header.strip()).index("max rel diff")
    assert all(float(re.split(r"\s{2,}", l.strip())[col]) < 1e-5 for l in lines), proc.stdout
    assert "GFLOP/s" in header and "sgemm" in proc.stdout, proc.stdout  # the op's speed beside same-run sgemm
