"""GaussianDiffGraphAttention: CPU kernel, portable function and PyTorch op against the float64
reference (the cases of the shared harness, tests/op_harness.py, and the op's own checks).

Every case draws fresh random inputs: nodes laid out as frames x slots (t = frame index, x and y
in [0, 1]), a random adjacency with self-loops, or the scene-graph one (all slots of a frame,
each slot along its track), padded nodes, and per-head sigma from tiny to huge.
"""

from __future__ import annotations

import numpy as np
import reference
from helpers import SEED, gaussian_diff_graph_attention_model, session  # noqa: F401  (SEED: tests/test_cuda_*.py)
from op_harness import OpCases, op_tests
from test_edge_graph_attention import random_adjacency

TOL = 1e-5
OP = "GaussianDiffGraphAttention"


def scene_graph_adjacency(B: int, T: int, K: int) -> np.ndarray:
    """The video scene graph (docs/families.md, Finsta): slots of one frame all linked (spatial edges), slot m
    linked to slot m of the next and previous frame (temporal edges); N = T * K."""
    frame, slot = np.divmod(np.arange(T * K), K)
    adj = (frame[:, None] == frame[None]) | (
        (np.abs(frame[:, None] - frame[None]) == 1) & (slot[:, None] == slot[None])
    )
    return np.broadcast_to(adj, (B, T * K, T * K)).copy()


def make_case(
    rng: np.random.Generator,
    B,
    H,
    N,
    d,
    density=0.5,
    sigma=None,
    log_sigma=(-2.0, 2.0),
    padded=0,
    frames=None,
    q_scale=1.0,
):
    """Inputs for one case; ``frames`` lays nodes out as frames x (N / frames) slots with the
    scene-graph adjacency, else the adjacency is random with ``density``."""
    q, k, v = (rng.standard_normal((B, H, N, d)).astype(np.float32) for _ in range(3))
    q *= np.float32(q_scale)
    slots = N // frames if frames else max(1, int(np.sqrt(N)))
    t = (np.arange(N) // slots).astype(np.float32)
    pos = np.concatenate([rng.uniform(0, 1, (B, N, 2)), np.broadcast_to(t[None, :, None], (B, N, 1))], -1).astype(
        np.float32
    )
    if sigma is None:
        sigma = np.exp(rng.uniform(*log_sigma, (H, 3)))
    sigma = np.broadcast_to(np.asarray(sigma, np.float32), (H, 3)).copy()
    padded = min(padded, N - 1) if N > 1 else 0
    if frames:
        adj = scene_graph_adjacency(B, frames, slots)
        adj[:, np.arange(N), np.arange(N)] = True
    else:
        adj = random_adjacency(rng, B, N, density, padded)
    if padded:  # padded nodes: zero features and position, only their self-loop
        for a in (q, k, v):
            a[:, :, N - padded :] = 0
        pos[:, N - padded :] = 0
    return dict(q=q, k=k, v=v, pos=pos, adj=adj, sigma=sigma)


def random_cases(n: int, seed) -> list:
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        c = dict(
            B=int(rng.integers(1, 4)),
            H=int(rng.integers(1, 9)),
            N=int(rng.integers(1, 41)),
            d=int(rng.integers(1, 65)),
            density=float(rng.uniform(0, 1)),
            padded=int(rng.integers(0, 4)),
            log_sigma=(-3.0, 3.0),
            q_scale=float(rng.choice([1.0, rng.uniform(2.0, 4.0)])),
        )
        if rng.random() < 0.3:  # the scene-graph layout: frames x slots
            frames = int(rng.integers(1, 6))
            c.update(N=frames * int(rng.integers(1, 9)), frames=frames, padded=0)
        cases.append(c)
    return cases


EDGE_CASES = {
    "one_node": dict(B=2, H=3, N=1, d=16),
    "one_node_d1": dict(B=1, H=1, N=1, d=1),
    "only_self_loops": dict(B=2, H=4, N=12, d=24, density=0.0),
    "fully_connected": dict(B=3, H=2, N=20, d=32, density=1.0),
    "tiny_sigma": dict(B=2, H=3, N=16, d=16, density=1.0, sigma=1e-30),
    "small_sigma": dict(B=2, H=3, N=16, d=16, density=1.0, sigma=1e-3),
    "huge_sigma": dict(B=2, H=3, N=16, d=16, density=1.0, sigma=1e30),
    "mixed_sigma_per_axis": dict(B=1, H=2, N=12, d=8, density=1.0, sigma=[[1e-20, 1.0, 1e20], [5.0, 1e-6, 0.3]]),
    "large_logits": dict(B=2, H=2, N=16, d=32, density=0.8, q_scale=30.0),
    "padded": dict(B=3, H=4, N=24, d=16, density=0.6, padded=10),
    "all_padded_but_one": dict(B=2, H=2, N=8, d=8, density=1.0, padded=7),
    "head_dim_1": dict(B=2, H=3, N=17, d=1),
    "scene_graph_8x16": dict(B=1, H=8, N=128, d=64, frames=8, log_sigma=(-1.0, 1.0)),
    "large": dict(B=2, H=8, N=100, d=64, density=0.3),
}


def inputs(rng: np.random.Generator, case: dict) -> tuple[dict, dict]:
    return make_case(rng, **case), {}


def run_torch(feeds: dict, a: dict) -> list[np.ndarray]:
    import torch

    from finsta.nn import gaussian_diff_graph_attention

    names = ("q", "k", "v", "pos", "adj", "sigma")
    return [gaussian_diff_graph_attention(*(torch.from_numpy(feeds[n]) for n in names)).numpy()]


def test_tiny_sigma_leaves_only_the_self_loop():
    feeds = make_case(np.random.default_rng(3), 2, 3, 10, 8, density=1.0, sigma=1e-30)
    out = session(gaussian_diff_graph_attention_model()).run(None, feeds)[0]
    np.testing.assert_array_equal(out[..., :8], feeds["v"])  # context = own value
    np.testing.assert_array_equal(out[..., 8:], 0.0)  # no change


# ---- bad inputs: each must give an ORT error naming the op and the input, never a crash ----


def _feeds(B=2, H=2, N=5, d=8, **override):
    return {**make_case(np.random.default_rng(0), B, H, N, d), **override}


def _no_self_loop(b: int, n: int) -> np.ndarray:
    adj = _feeds()["adj"].copy()
    adj[b, n, n] = False
    return adj


def _sigma_with(h: int, c: int, value: float) -> np.ndarray:
    sigma = np.ones((2, 3), np.float32)
    sigma[h, c] = value
    return sigma


f32 = lambda *s: np.ones(s, np.float32)  # noqa: E731

BAD_RUN_INPUTS = {
    "q_rank": (dict(q=f32(2, 5, 8)), "input 'q' must have rank 4 \\[B, H, N, d\\], got shape \\[2, 5, 8\\]"),
    "k_shape": (dict(k=f32(2, 3, 5, 8)), "input 'k' has shape \\[2, 3, 5, 8\\] but 'q' has shape \\[2, 2, 5, 8\\]"),
    "v_shape": (dict(v=f32(2, 2, 6, 8)), "input 'v' has shape \\[2, 2, 6, 8\\] but 'q' has shape \\[2, 2, 5, 8\\]"),
    "pos_rank": (dict(pos=f32(5, 3)), "input 'pos' must have rank 3 \\[B, N, 3\\], got shape \\[5, 3\\]"),
    "pos_two_coords": (
        dict(pos=f32(2, 5, 2)),
        "input 'pos' must have shape \\[B, N, 3\\] = \\[2, 5, 3\\] \\(x, y, t of each node\\), got \\[2, 5, 2\\]",
    ),
    "pos_shape_N": (dict(pos=f32(2, 4, 3)), "input 'pos' must have shape \\[B, N, 3\\] = \\[2, 5, 3\\]"),
    "pos_float64": (dict(pos=np.ones((2, 5, 3))), "input 'pos' must be float32, got float64"),
    "adj_rank": (dict(adj=np.ones((5, 5), bool)), "input 'adj' must have rank 3 \\[B, N, N\\], got shape \\[5, 5\\]"),
    "adj_shape": (
        dict(adj=np.ones((2, 6, 6), bool)),
        "input 'adj' must have shape \\[B, N, N\\] = \\[2, 5, 5\\], got \\[2, 6, 6\\]",
    ),
    "adj_int32": (dict(adj=np.ones((2, 5, 5), np.int32)), "input 'adj' must be bool, got int32"),
    "sigma_rank": (dict(sigma=f32(6)), "input 'sigma' must have rank 2 \\[H, 3\\], got shape \\[6\\]"),
    "sigma_heads": (dict(sigma=f32(3, 3)), "input 'sigma' must have shape \\[H, 3\\] = \\[2, 3\\], got \\[3, 3\\]"),
    "sigma_two_axes": (dict(sigma=f32(2, 2)), "input 'sigma' must have shape \\[H, 3\\] = \\[2, 3\\], got \\[2, 2\\]"),
    "sigma_float64": (dict(sigma=np.ones((2, 3))), "input 'sigma' must be float32, got float64"),
    "sigma_zero": (
        dict(sigma=_sigma_with(1, 0, 0.0)),
        "input 'sigma' must be finite and > 0, got sigma\\[1, 0\\] = 0(?![\\d.])",
    ),
    "sigma_negative": (
        dict(sigma=_sigma_with(0, 2, -0.5)),
        "input 'sigma' must be finite and > 0, got sigma\\[0, 2\\] = -0.5(?![\\d.])",
    ),
    "sigma_nan": (
        dict(sigma=_sigma_with(1, 1, np.nan)),
        "input 'sigma' must be finite and > 0, got sigma\\[1, 1\\] = nan(?![\\d.])",
    ),
    "sigma_inf": (
        dict(sigma=_sigma_with(0, 0, np.inf)),
        "input 'sigma' must be finite and > 0, got sigma\\[0, 0\\] = inf(?![\\d.])",
    ),
    "sigma_minus_zero": (
        dict(sigma=_sigma_with(0, 1, -0.0)),
        "input 'sigma' must be finite and > 0, got sigma\\[0, 1\\] = -0(?![\\d.])",
    ),
    "q_int64": (dict(q=np.ones((2, 2, 5, 8), np.int64)), "input 'q' must be float32, got int64"),
    "missing_self_loop": (
        dict(adj=_no_self_loop(1, 4)),
        "input 'adj' lacks the self-loop of node 4 in batch 1 \\(adj\\[1, 4, 4\\] is false\\)",
    ),
    "no_edges_at_all": (dict(adj=np.zeros((2, 5, 5), bool)), "input 'adj' lacks the self-loop of node 0 in batch 0"),
}


def _kernel_rejects() -> tuple[dict, dict, str]:
    # a non-positive sigma: the kernel refuses it, the portable body silently computes
    feeds = make_case(np.random.default_rng(1), 1, 2, 4, 8)
    feeds["sigma"][1, 2] = -1.0
    return feeds, {}, "input 'sigma' must be finite and > 0, got sigma\\[1, 2\\] = -1(?![\\d.])"


CASES = OpCases(
    op=OP,
    inputs=inputs,
    reference=lambda feeds, a: [reference.gaussian_diff_graph_attention(**feeds)],
    torch_op=run_torch,
    random_cases=random_cases,
    edge_cases=EDGE_CASES,
    tol=TOL,
    good_feeds=_feeds,
    good_attrs={},
    bad_inputs={name: ({**_feeds(), **override}, message) for name, (override, message) in BAD_RUN_INPUTS.items()},
    bad_attributes=[],  # the op takes none
    portable_bad_attributes=[
        (dict(clamp=1.0), "takes no attributes, got \\['clamp'\\]"),
        (dict(sigma=1.0, scale=2), "takes no attributes, got \\['scale', 'sigma'\\]"),
    ],
    kernel_rejects=_kernel_rejects,
    empty_cases={
        f"{B}-{H}-{N}-{d}": dict(B=B, H=H, N=N, d=d)
        for B, H, N, d in [(0, 2, 5, 8), (2, 0, 5, 8), (2, 3, 0, 8), (2, 3, 5, 0)]
    },
    output_shapes=lambda feeds: [(*feeds["q"].shape[:3], 2 * feeds["q"].shape[3])],
)

globals().update(op_tests(CASES))
