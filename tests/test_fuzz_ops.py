"""A short run of the op fuzzer (benchmarks/fuzz_ops.py) on the ASan/UBSan library (make ops-asan).

Random valid and invalid shapes, dtypes, attribute values and types, NaN and inf values for all
three ops (unknown attribute names too, refused by the loaders' model check), each case in a worker
subprocess so that a crash or a sanitizer report is counted, not fatal. Valid cases must equal the
float64 reference, invalid ones must raise an error (the model check's or ORT's), and a
non-finite value must reach every output it touches (docs/ops.md). Fresh cases each run;
FINSTA_TEST_SEED=<printed seed> replays them (the longer run: python benchmarks/fuzz_ops.py --n 100000).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from helpers import fresh_seed

ROOT = Path(__file__).resolve().parents[1]
SEED = fresh_seed() % 2**32
N_CALLS = 3000  # about 40 s on 2 cores under ASan


def _fuzzer():
    spec = importlib.util.spec_from_file_location("fuzz_ops", ROOT / "benchmarks" / "fuzz_ops.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fuzzed_calls_never_crash_and_are_right_or_refused():
    fz = _fuzzer()
    if not (fz.ASAN_LIB_DIR / "libfinsta_ops.so").is_file():
        pytest.fail(f"missing {fz.ASAN_LIB_DIR}: run `make ops-asan`")
    res = fz.fuzz(N_CALLS, SEED, asan=True, chunk=800)
    c = res["counts"]
    replay = f"FINSTA_TEST_SEED={SEED}; replay a case: python benchmarks/fuzz_ops.py --seed {SEED} --replay CASE"
    assert not res["crashes"], f"{replay}\n{res['crashes'][:3]}"
    bad = {k: c.get(k, 0) for k in ("mismatch", "valid_refused", "silent", "swallowed") if c.get(k, 0)}
    assert not bad, f"{replay}\n{bad}\n{res['failures'][:10]}"
    # every kind of case was drawn, and the valid ones were checked against the reference
    assert c.get("match", 0) > N_CALLS // 4 and c.get("refused", 0) > N_CALLS // 5 and c.get("propagated", 0) > 50, c
