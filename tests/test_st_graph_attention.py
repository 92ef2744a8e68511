"""STGraphAttention: CPU kernel, portable function and PyTorch op against the float64 reference
(the cases of the shared harness, tests/op_harness.py).

Every case draws fresh random inputs. A similarity lying within 1e-5 of the threshold would make
the edge decision depend on float32 rounding, so the threshold is nudged into the nearest gap
among the case's similarities (float32 error in S is below 1e-6 at these sizes).
"""

from __future__ import annotations

import numpy as np
import reference
from helpers import SEED  # noqa: F401  (tests/test_cuda_*.py take the run's seed from here)
from op_harness import OpCases, op_tests

TOL = 1e-5
MARGIN = 1e-5


def safe_threshold(x: np.ndarray, P: int, r: int, tau: float) -> float:
    """tau, moved if needed so that no in-band similarity lies within MARGIN of it."""
    _, S = reference.st_graph_attention_edges(x, P, r, tau)
    L = x.shape[1]
    frame = np.arange(L) // P
    band = (np.abs(frame[:, None] - frame[None, :]) <= r) & ~np.eye(L, dtype=bool)
    nonzero = np.linalg.norm(x, axis=-1) > 0  # pairs with a zero token have A = 0 either way
    pair_ok = band[None] & nonzero[:, :, None] & nonzero[:, None, :]
    vals = np.unique(S[pair_ok])
    if vals.size == 0 or np.min(np.abs(vals - tau)) >= MARGIN:
        return tau
    gaps = np.diff(vals)
    cands = np.concatenate(
        [[vals[0] - 2 * MARGIN], ((vals[:-1] + vals[1:]) / 2)[gaps > 4 * MARGIN], [vals[-1] + 2 * MARGIN]]
    )
    return float(cands[np.argmin(np.abs(cands - tau))])


def make_case(rng: np.random.Generator, B, H, T, P, d, D, r, tau, zero_tokens=0, scale=None):
    L = T * P
    x = rng.standard_normal((B, L, D)).astype(np.float32)
    # correlated tokens within a video, so thresholds in (0, 1) keep some edges and drop others
    x += rng.standard_normal((B, 1, D)).astype(np.float32) * rng.uniform(0, 2)
    if zero_tokens and L > 1:
        x[:, rng.choice(L, size=min(zero_tokens, L - 1), replace=False)] = 0
    q, k, v = (rng.standard_normal((B, H, L, d)).astype(np.float32) for _ in range(3))
    tau = safe_threshold(x, P, r, tau)
    return dict(x=x, q=q, k=k, v=v), dict(P=P, r=r, tau=tau, scale=scale)


def random_cases(n: int, seed) -> list:
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        cases.append(
            dict(
                B=int(rng.integers(1, 4)),
                H=int(rng.integers(1, 9)),
                T=int(rng.integers(1, 10)),
                P=int(rng.integers(1, 65)),
                d=int(rng.integers(8, 65)),
                D=int(rng.integers(4, 97)),
                r=int(rng.integers(0, 4)),
                tau=float(rng.uniform(-1.0, 1.2)),
                zero_tokens=int(rng.integers(0, 3)),
            )
        )
    return cases


EDGE_CASES = {
    "zero_tokens": dict(B=2, H=3, T=4, P=7, d=16, D=12, r=1, tau=0.2, zero_tokens=5),
    "zero_tokens_negative_tau": dict(B=1, H=2, T=3, P=5, d=8, D=6, r=1, tau=-0.5, zero_tokens=4),
    "one_frame": dict(B=2, H=4, T=1, P=33, d=24, D=16, r=1, tau=0.1),
    "radius_ge_T": dict(B=1, H=2, T=3, P=10, d=16, D=8, r=5, tau=0.0),
    "radius_0": dict(B=2, H=2, T=5, P=9, d=8, D=8, r=0, tau=0.3),
    "tau_above_1": dict(B=2, H=3, T=4, P=6, d=12, D=10, r=1, tau=1.1),
    "tau_minus_1": dict(B=1, H=2, T=3, P=8, d=16, D=4, r=2, tau=-1.0),
    "one_token": dict(B=3, H=2, T=1, P=1, d=8, D=4, r=1, tau=0.5),
    "one_token_per_frame": dict(B=1, H=3, T=9, P=1, d=8, D=8, r=2, tau=0.0),
    "explicit_scale": dict(B=2, H=2, T=3, P=7, d=16, D=8, r=1, tau=0.2, scale=0.7),
    "large": dict(B=1, H=8, T=9, P=64, d=64, D=96, r=1, tau=0.05),
    # The CPU kernel's blocking: P > 66 splits a frame into row blocks (here 54 + 46 rows), frames that
    # start inside a 16-key panel, d = 20 over two 16-channel panels, D = 17 past the 8-lane loops.
    "row_blocks_and_panel_edges": dict(B=2, H=2, T=3, P=100, d=20, D=17, r=1, tau=0.1),
}


def _attrs(p: dict) -> dict:
    a = dict(tokens_per_frame=p["P"], frame_radius=p["r"], sim_threshold=p["tau"])
    if p["scale"] is not None:
        a["scale"] = p["scale"]
    return a


def inputs(rng: np.random.Generator, case: dict) -> tuple[dict, dict]:
    c = dict(case)
    feeds, p = make_case(rng, zero_tokens=c.pop("zero_tokens", 0), scale=c.pop("scale", None), **c)
    return feeds, _attrs(p)


def run_reference(feeds: dict, a: dict) -> list[np.ndarray]:
    return [
        reference.st_graph_attention(
            **feeds, P=a["tokens_per_frame"], r=a.get("frame_radius", 1), tau=a["sim_threshold"], scale=a.get("scale")
        )
    ]


def run_torch(feeds: dict, a: dict) -> list[np.ndarray]:
    import torch

    from finsta.nn import st_graph_attention

    t = {k: torch.from_numpy(v) for k, v in feeds.items()}
    out = st_graph_attention(
        t["x"],
        t["q"],
        t["k"],
        t["v"],
        a["tokens_per_frame"],
        a["sim_threshold"],
        a.get("frame_radius", 1),
        a.get("scale"),
    )
    return [out.numpy()]


def _feeds(B=1, L=6, D=4, H=2, d=8, *, qshape=None, kshape=None, vshape=None, xshape=None, dtype=np.float32):
    rng = np.random.default_rng(0)
    f = lambda s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    return dict(
        x=f(xshape or (B, L, D)), q=f(qshape or (B, H, L, d)), k=f(kshape or (B, H, L, d)), v=f(vshape or (B, H, L, d))
    )


def _kernel_rejects() -> tuple[dict, dict, str]:
    # L % P != 0: the kernel refuses it, the portable body silently computes
    feeds = dict(x=np.ones((1, 6, 4), np.float32), **{n: np.ones((1, 1, 6, 8), np.float32) for n in "qkv"})
    return feeds, dict(tokens_per_frame=4, sim_threshold=0.1), "L=6 tokens is not a multiple of tokens_per_frame=4"


NAN = float("nan")

CASES = OpCases(
    op="STGraphAttention",
    inputs=inputs,
    reference=run_reference,
    torch_op=run_torch,
    random_cases=random_cases,
    edge_cases=EDGE_CASES,
    tol=TOL,
    good_feeds=_feeds,
    good_attrs=dict(tokens_per_frame=3, sim_threshold=0.1),
    bad_inputs={
        "L_not_multiple_of_P": (_feeds(L=7), "L=7 tokens is not a multiple of tokens_per_frame=3"),
        "batch_mismatch": (_feeds(xshape=(2, 6, 4)), "batch mismatch: 'x' has B=2 but 'q' has B=1"),
        "token_mismatch": (_feeds(xshape=(1, 9, 4)), "token-count mismatch: 'x' has L=9 but 'q' has L=6"),
        "heads_mismatch": (
            _feeds(kshape=(1, 3, 6, 8)),
            "input 'k' has shape \\[1, 3, 6, 8\\] but 'q' has shape \\[1, 2, 6, 8\\]",
        ),
        "head_dim_mismatch": (_feeds(vshape=(1, 2, 6, 4)), "input 'v' has shape \\[1, 2, 6, 4\\]"),
        "k_batch_mismatch": (_feeds(kshape=(2, 2, 6, 8)), "input 'k' has shape \\[2, 2, 6, 8\\]"),
        "x_rank": (
            dict(_feeds(), x=np.ones((6, 4), np.float32)),
            "input 'x' must have rank 3 \\[B, L, D\\], got shape \\[6, 4\\]",
        ),
        "q_rank": (dict(_feeds(), q=np.ones((1, 6, 8), np.float32)), "input 'q' must have rank 4 \\[B, H, L, d\\]"),
        "dtype_int64": (_feeds(dtype=np.int64), "input 'x' must be float32, got int64"),
        "dtype_int32": (_feeds(dtype=np.int32), "input 'x' must be float32, got int32"),
        "dtype_float64": (_feeds(dtype=np.float64), "input 'x' must be float32, got float64"),
    },
    bad_attributes=[
        (dict(tokens_per_frame=0, sim_threshold=0.1), "attribute 'tokens_per_frame' must be > 0, got 0"),
        (dict(tokens_per_frame=-3, sim_threshold=0.1), "attribute 'tokens_per_frame' must be > 0, got -3"),
        (dict(tokens_per_frame=3, sim_threshold=0.1, frame_radius=-1), "attribute 'frame_radius' must be >= 0, got -1"),
        (dict(tokens_per_frame=3), "required float attribute 'sim_threshold' is missing"),
        (dict(sim_threshold=0.1), "required int attribute 'tokens_per_frame' is missing"),
        (dict(tokens_per_frame=3, sim_threshold=NAN), "attribute 'sim_threshold' is NaN"),
        (dict(tokens_per_frame=3, sim_threshold=0.1, scale=0.0), "attribute 'scale' must be finite and > 0"),
    ],
    portable_bad_attributes=[
        (dict(tokens_per_frame=0, sim_threshold=0.1), "tokens_per_frame must be > 0"),
        (dict(tokens_per_frame=3, sim_threshold=0.1, frame_radius=-2), "frame_radius must be >= 0"),
        (dict(tokens_per_frame=3), "required attribute 'sim_threshold' is missing"),
        (dict(sim_threshold=0.1), "required attribute 'tokens_per_frame' is missing"),
        (dict(tokens_per_frame=3, sim_threshold=NAN), "sim_threshold must not be NaN"),
        (dict(tokens_per_frame=3, sim_threshold=0.1, scale=0.0), "scale must be finite and > 0, got 0.0"),
        (dict(tokens_per_frame=3, sim_threshold=0.1, scale=float("inf")), "scale must be finite and > 0, got inf"),
        (dict(tokens_per_frame=3.0, sim_threshold=0.1), "attribute 'tokens_per_frame' must be an int, got a float"),
        (dict(tokens_per_frame=3, sim_threshold=1), "attribute 'sim_threshold' must be a float, got an int"),
        (
            dict(tokens_per_frame=3, sim_threshold=0.1, frame_radious=1),
            "unknown attribute\\(s\\) \\['frame_radious'\\]; known: \\['frame_radius', 'scale', 'sim_threshold', 'tokens_per_frame'\\]",
        ),
    ],
    kernel_rejects=_kernel_rejects,
    empty_cases={"batch_0": dict(B=0, H=2, T=2, P=3, d=8, D=4, r=1, tau=0.1)},
    output_shapes=lambda feeds: [feeds["q"].shape],
)

globals().update(op_tests(CASES))
