"""The CUDA kernels' arithmetic, run on the CPU through its host twin (custom_ops/tests/cuda_twin.cc).

The twin executes, in the kernels' order, the same core functions as the CUDA kernels
(common/*_core.h): for STGraphAttention key windows, edge weights, online softmax; for
EdgeGraphAttention the clipped edge weights and their normalisation; for GaussianDiffGraphAttention
1 / sigma, the Gaussian log-bias and online softmax; for both graph ops the device self-loop
check. The GPU run itself is tests/test_cuda_gpu.py, which needs a GPU.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import reference
import test_edge_graph_attention as edge
import test_gaussian_diff_graph_attention as gauss
from helpers import large_clamp_feeds, max_rel_err
from test_st_graph_attention import EDGE_CASES, SEED, TOL, make_case, random_cases

TWIN = Path(__file__).resolve().parents[1] / "build" / "custom_ops" / "finsta_cuda_twin"


def run_twin(tmp_path, feeds, p):
    assert TWIN.is_file(), f"{TWIN} missing: build it with `make ops`"
    B, L, D = feeds["x"].shape
    _, H, _, d = feeds["q"].shape
    scale = p["scale"] if p["scale"] is not None else d**-0.5
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
    assert max_rel_err(out, ref) <= TOL, f"FINSTA_TEST_SEED={SEED} case={case}"


def run_graph_twin(
    tmp_path, op: str, header: list[int], floats: list[float], arrays: list[np.ndarray], adj: np.ndarray
):
    """Runs the twin for a graph op; returns (exit status, stderr, raw float32 output)."""
    assert TWIN.is_file(), f"{TWIN} missing: build it with `make ops`"
    inp, out = tmp_path / "in.bin", tmp_path / "out.bin"
    with open(inp, "wb") as f:
        np.array(header, np.int64).tofile(f)
        np.array(floats, np.float32).tofile(f)
        for a in arrays:
            np.ascontiguousarray(a, np.float32).tofile(f)
        np.ascontiguousarray(adj, np.uint8).tofile(f)
    proc = subprocess.run([str(TWIN), op, str(inp), str(out)], capture_output=True, text=True)
    return proc.returncode, proc.stderr, (np.fromfile(out, np.float32) if proc.returncode == 0 else None)


def run_edge_twin(tmp_path, feeds, clamp):
    B, H, N, d = feeds["q"].shape
    rc, err, raw = run_graph_twin(
        tmp_path,
        "EdgeGraphAttention",
        [B, H, N, d],
        [clamp, d**-0.5 if d else 1.0],
        [feeds[n] for n in ("q", "k", "v", "e")],
        feeds["adj"],
    )
    assert rc == 0, err
    return raw[: B * H * N * d].reshape(B, H, N, d), raw[B * H * N * d :].reshape(B, H, N, N, d)


def run_gaussian_twin(tmp_path, feeds):
    B, H, N, d = feeds["q"].shape
    rc, err, raw = run_graph_twin(
        tmp_path,
        "GaussianDiffGraphAttention",
        [B, H, N, d],
        [d**-0.5 if d else 1.0],
        [feeds[n] for n in ("q", "k", "v", "pos", "sigma")],
        feeds["adj"],
    )
    assert rc == 0, err
    return raw.reshape(B, H, N, 2 * d)


EDGE_TWIN_CASES = [pytest.param(c, id=f"random{i}") for i, c in enumerate(edge.random_cases(50, SEED))] + [
    pytest.param(c, id=n) for n, c in edge.EDGE_CASES.items()
]
GAUSS_TWIN_CASES = [pytest.param(c, id=f"random{i}") for i, c in enumerate(gauss.random_cases(50, SEED))] + [
    pytest.param(c, id=n) for n, c in gauss.EDGE_CASES.items()
]


@pytest.mark.parametrize("case", EDGE_TWIN_CASES)
def test_edge_graph_attention_twin_matches_reference(case, tmp_path):
    feeds, p = edge.make_case(np.random.default_rng([SEED, 13]), **case)
    ref_h, ref_s = reference.edge_graph_attention(**feeds, clamp=p["clamp"])
    h, e_out = run_edge_twin(tmp_path, feeds, p["clamp"])
    errs = (max_rel_err(h, ref_h), max_rel_err(e_out, ref_s))
    assert max(errs) <= TOL, f"FINSTA_TEST_SEED={SEED} case={case}: relative errors {errs}"


@pytest.mark.parametrize("case", GAUSS_TWIN_CASES)
def test_gaussian_diff_graph_attention_twin_matches_reference(case, tmp_path):
    feeds = gauss.make_case(np.random.default_rng([SEED, 17]), **case)
    out = run_gaussian_twin(tmp_path, feeds)
    err = max_rel_err(out, reference.gaussian_diff_graph_attention(**feeds))
    assert err <= TOL, f"FINSTA_TEST_SEED={SEED} case={case}: relative error {err}"


@pytest.mark.parametrize("op", ["EdgeGraphAttention", "GaussianDiffGraphAttention"])
def test_twin_self_loop_check_names_the_smallest_missing_node(op, tmp_path):
    # The device check keeps the smallest flat index b * N + n (atomicMin) among missing nodes.
    B, H, N, d = 3, 2, 6, 4
    adj = np.ones((B, N, N), bool)
    for b, n in [(2, 0), (1, 5), (1, 4), (2, 3)]:
        adj[b, n, n] = False
    q = np.ones((B, H, N, d), np.float32)
    if op == "EdgeGraphAttention":
        rc, err, _ = run_graph_twin(tmp_path, op, [B, H, N, d], [5.0, 0.5], [q, q, q, np.ones((B, H, N, N, d))], adj)
    else:
        rc, err, _ = run_graph_twin(
            tmp_path, op, [B, H, N, d], [0.5], [q, q, q, np.ones((B, N, 3)), np.ones((H, 3))], adj
        )
    assert rc == 3 and "missing self-loop: node 4 in batch 1" in err, (rc, err)


# --- The host side's checks and the non-finite policy, as the CUDA path applies them (issue 14).


@pytest.mark.parametrize("r", [2**63 - 1, 2**63 - 2, 2**40])
def test_twin_clamps_a_huge_frame_radius(r, tmp_path):
    # 2 * r + 1 (the CUDA key count) and t + r overflowed int64 before the radius was clamped
    feeds, p = make_case(np.random.default_rng([SEED, 29]), B=1, H=2, T=8, P=4, d=8, D=6, r=7, tau=0.1)
    out = run_twin(tmp_path, feeds, dict(p, r=r))
    ref = reference.st_graph_attention(**feeds, P=4, r=7, tau=p["tau"])
    assert max_rel_err(out, ref) <= TOL, f"FINSTA_TEST_SEED={SEED}"


def test_twin_keeps_the_graph_of_huge_x_and_propagates_nan(tmp_path):
    feeds, p = make_case(np.random.default_rng([SEED, 31]), B=1, H=2, T=4, P=5, d=8, D=16, r=1, tau=0.2)
    big = dict(feeds, x=(feeds["x"] * np.float32(1e20)).astype(np.float32))  # |x|^2 overflows float32
    assert max_rel_err(run_twin(tmp_path, big, p), reference.st_graph_attention(**big, P=5, r=1, tau=p["tau"])) <= TOL
    feeds["x"][0, 7, 3] = np.nan  # token 7, frame 1: frames 0-2 see it
    out = run_twin(tmp_path, feeds, p)
    assert np.all(np.isnan(out[0][:, :15])) and np.all(np.isfinite(out[0][:, 15:])), "NaN x swallowed or spread"


@pytest.mark.parametrize("clamp", [100.0, 300.0])
def test_twin_edge_attention_is_exact_for_a_large_clamp(clamp, tmp_path):
    feeds = large_clamp_feeds()
    h, _ = run_edge_twin(tmp_path, feeds, clamp)
    np.testing.assert_allclose(h, 1.0, rtol=1e-6)  # was NaN: exp(clamp) overflowed float32
    feeds["q"] *= -1  # every logit at -clamp: exp(-clamp) / 1e-6 must not overflow either
    h, _ = run_edge_twin(tmp_path, feeds, clamp)
    np.testing.assert_allclose(h, reference.edge_graph_attention(**feeds, clamp=clamp)[0], rtol=1e-5, atol=1e-38)


@pytest.mark.parametrize("clamp,rc", [(0.0, 5), (float("nan"), 5)])
def test_twin_refuses_what_the_host_side_refuses(clamp, rc, tmp_path):
    q = np.ones((1, 1, 2, 2), np.float32)
    got, err, _ = run_graph_twin(
        tmp_path,
        "EdgeGraphAttention",
        [1, 1, 2, 2],
        [clamp, 0.5],
        [q, q, q, np.ones((1, 1, 2, 2, 2))],
        np.ones((1, 2, 2), bool),
    )
    assert got == rc, (got, err)
