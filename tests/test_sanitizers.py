"""The CPU kernels under AddressSanitizer and UBSan: the random, edge and bad-input cases of each
op's test file run in a subprocess against the sanitized library (make ops-asan). Any
out-of-bounds access or undefined behaviour aborts that run and fails this test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASAN_LIB_DIR = ROOT / "build" / "asan" / "finsta_rt" / "_lib"
KERNEL_TEST_FILES = [
    "test_st_graph_attention.py",
    "test_edge_graph_attention.py",
    "test_gaussian_diff_graph_attention.py",
]


@pytest.mark.parametrize("test_file", KERNEL_TEST_FILES)
def test_kernel_tests_pass_under_asan_and_ubsan(test_file):
    assert (ASAN_LIB_DIR / "libfinsta_ops.so").is_file(), f"missing {ASAN_LIB_DIR}: run `make ops-asan`"

    def lib(name):
        return subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()

    env = dict(
        os.environ,
        # python links no libstdc++: without it preloaded, ASan's __cxa_throw interceptor finds no
        # real __cxa_throw and aborts on ONNX Runtime's first C++ exception (its error path)
        LD_PRELOAD=f"{lib('libasan.so')} {lib('libstdc++.so')}",
        ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1",
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
        FINSTA_OPS_DIR=str(ASAN_LIB_DIR),
        FINSTA_TEST_FORMS="cpu_kernel",
    )
    proc = subprocess.run(
        # -s: no fd capture, so a sanitizer report that aborts the run still reaches us
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-s",
            "-p",
            "no:cacheprovider",
            str(ROOT / "tests" / test_file),
            "-k",
            "reference or bad or empty or dtype or clamp or sigma or kernel_is_used",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    text = proc.stdout + proc.stderr
    at = max(text.find("ERROR: AddressSanitizer"), text.find("runtime error"))
    tail = text[at : at + 3000] if at >= 0 else text[-4000:]  # the sanitizer's report, else the end
    assert proc.returncode == 0, tail
    assert "AddressSanitizer" not in tail and "runtime error" not in tail, tail
    assert " passed" in proc.stdout, tail
