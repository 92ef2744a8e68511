"""The CUDA kernels' arithmetic, run on the CPU through its host twin (custom_ops/tests/cuda_twin.cc).

The twin executes, in the kernels' order, the same core functions as the three CUDA kernels
(common/st_graph_attention_core.h): key windows, edge weights, online softmax. The GPU run itself
is tests/test_cuda_gpu.py, which needs a GPU.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import reference
from helpers import max_rel_err
from test_st_graph_attention import EDGE_CASES, make_case, random_cases, SEED, TOL

TWIN = Path(__file__).resolve().parents[1] / "build" / "custom_ops" / "finsta_cuda_twin"


def run_twin(tmp_path, feeds, p):
    assert TWIN.is_file(), f"{TWIN} missing: build it with `make ops`"
    B, L, D = feeds["x"].shape
    _, H, _, d = feeds["q"].shape
    scale = p["scale"] if p["scale"] is not None else d ** -0.5
    inp, out = tmp_path / "in.bin", tmp_path / "out.bin"
    with open(inp, "wb") as f:
        np.array([B, L, D, H, d, p["P"], p["r"]], np.int64).tofile(f)
        np.array([p["tau"], scale], np.float32).tofile(f)
        for n in "xqkv":
            np.ascontiguousarray(feeds[n], np.float32).tofile(f)
    subprocess.run([str(TWIN), str(inp), str(out)], check=True)
    return np.fromfile(out, np.float32).reshape(B, H, L, d)


CASES = [pytest.param(c, id=f"random{i}") for i, c in enumerate(random_cases(50, SEED))] + [
    pytest.param(c, id=n) for n, c in EDGE_CASES.items() if n != "large"
]


@pytest.mark.parametrize("case", CASES)
def test_cuda_twin_matches_reference(case, tmp_path):
    c = dict(case)
    rng = np.random.default_rng([SEED, 7])
    feeds, p = make_case(rng, zero_tokens=c.pop("zero_tokens", 0), scale=c.pop("scale", None), **c)
    ref = reference.st_graph_attention(**feeds, P=p["P"], r=p["r"], tau=p["tau"], scale=p["scale"])
    out = run_twin(tmp_path, feeds, p)
    assert max_rel_err(out, ref) <= TOL, f"seed={SEED} case={case}"
