"""EdgeGraphAttention: CPU kernel, portable function and PyTorch op against the float64 reference
(the cases of the shared harness, tests/op_harness.py, and the op's own checks).

Every case draws fresh random inputs: a random adjacency with self-loops (density from empty to
full), padded nodes (zero features, only their self-loop), and q scaled so that some cases push
most logits past the clamp.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference
from helpers import SEED, edge_graph_attention_model, max_rel_err, session  # noqa: F401  (SEED: tests/test_cuda_*.py)
from op_harness import OpCases, op_tests

from finsta.export import attach_portable_functions

TOL = 1e-5
OP = "EdgeGraphAttention"


def random_adjacency(rng: np.random.Generator, B: int, N: int, density: float, padded: int = 0) -> np.ndarray:
    """[B, N, N] bool with every self-loop; the last ``padded`` nodes have only their self-loop."""
    adj = rng.random((B, N, N)) < density
    if padded:
        adj[:, N - padded :, :] = False
        adj[:, :, N - padded :] = False
    adj[:, np.arange(N), np.arange(N)] = True
    return adj


def make_case(rng: np.random.Generator, B, H, N, d, density, clamp=5.0, q_scale=1.0, padded=0, e_kind="normal"):
    q, k, v = (rng.standard_normal((B, H, N, d)).astype(np.float32) for _ in range(3))
    q *= np.float32(q_scale)
    e = {
        "normal": lambda: rng.standard_normal((B, H, N, N, d)),
        "zero": lambda: np.zeros((B, H, N, N, d)),
        "positive": lambda: rng.uniform(0.5, 2.0, (B, H, N, N, d)),
    }[e_kind]().astype(np.float32)
    padded = min(padded, N - 1) if N > 1 else 0
    if padded:  # padded nodes: zero features, only their self-loop
        for t in (q, k, v):
            t[:, :, N - padded :] = 0
        e[:, :, N - padded :] = 0
        e[:, :, :, N - padded :] = 0
    adj = random_adjacency(rng, B, N, density, padded)
    return dict(q=q, k=k, v=v, e=e, adj=adj), dict(clamp=clamp)


def random_cases(n: int, seed) -> list:
    rng = np.random.default_rng(seed)
    return [
        dict(
            B=int(rng.integers(1, 4)),
            H=int(rng.integers(1, 9)),
            N=int(rng.integers(1, 41)),
            d=int(rng.integers(1, 65)),
            density=float(rng.uniform(0, 1)),
            clamp=float(rng.choice([5.0, rng.uniform(0.3, 8.0)])),
            q_scale=float(rng.choice([1.0, rng.uniform(2.0, 6.0)])),
            padded=int(rng.integers(0, 4)),
        )
        for _ in range(n)
    ]


EDGE_CASES = {
    "one_node": dict(B=2, H=3, N=1, d=16, density=1.0),
    "one_node_d1": dict(B=1, H=1, N=1, d=1, density=1.0),
    "only_self_loops": dict(B=2, H=4, N=12, d=24, density=0.0),
    "fully_connected": dict(B=3, H=2, N=20, d=32, density=1.0),
    "clamp_hit": dict(B=2, H=4, N=16, d=32, density=0.7, clamp=2.0, q_scale=20.0, e_kind="positive"),
    "clamp_hit_both_sides": dict(B=2, H=2, N=16, d=16, density=1.0, clamp=1.0, q_scale=30.0),
    "tiny_clamp": dict(B=1, H=2, N=9, d=8, density=0.5, clamp=1e-3),
    "zero_edge_features": dict(B=2, H=2, N=10, d=8, density=0.4, e_kind="zero"),
    "padded": dict(B=3, H=4, N=24, d=16, density=0.6, padded=10),
    "all_padded_but_one": dict(B=2, H=2, N=8, d=8, density=1.0, padded=7),
    "head_dim_1": dict(B=2, H=3, N=17, d=1, density=0.5),
    "large": dict(B=2, H=8, N=64, d=64, density=0.3),
}


def inputs(rng: np.random.Generator, case: dict) -> tuple[dict, dict]:
    return make_case(rng, **case)


def run_torch(feeds: dict, a: dict) -> list[np.ndarray]:
    import torch

    from finsta.nn import edge_graph_attention

    h, e_out = edge_graph_attention(*(torch.from_numpy(feeds[n]) for n in ("q", "k", "v", "e", "adj")), a["clamp"])
    return [h.numpy(), e_out.numpy()]


def test_clamp_is_reached_and_bounds_the_weights():
    # One edge besides the self-loop: with logits far past the clamp, h is the fixed mix of the two.
    B, H, N, d = 1, 1, 2, 4
    q = np.full((B, H, N, d), 10.0, np.float32)
    k, e = np.ones((B, H, N, d), np.float32), np.ones((B, H, N, N, d), np.float32)
    e[0, 0, 0, 1] = -1.0  # s_01 sums to -20, s_00 to +20
    v = np.zeros((B, H, N, d), np.float32)
    v[0, 0, 1] = 1.0
    adj = np.ones((B, N, N), bool)
    h, _ = session(edge_graph_attention_model(clamp=2.0)).run(None, dict(q=q, k=k, v=v, e=e, adj=adj))
    w_self, w_other = np.exp(2.0), np.exp(-2.0)
    np.testing.assert_allclose(h[0, 0, 0], w_other / (w_self + w_other + 1e-6), rtol=1e-6)


# ---- bad inputs: each must give an ORT error naming the op and the input, never a crash ----


def _feeds(B=2, H=2, N=5, d=8, **override):
    feeds, _ = make_case(np.random.default_rng(0), B, H, N, d, density=0.5)
    return {**feeds, **override}


def _no_self_loop(b: int, n: int) -> np.ndarray:
    adj = _feeds()["adj"].copy()
    adj[b, n, n] = False
    return adj


f32 = lambda *s: np.ones(s, np.float32)  # noqa: E731

BAD_RUN_INPUTS = {
    "q_rank": (dict(q=f32(2, 5, 8)), "input 'q' must have rank 4 \\[B, H, N, d\\], got shape \\[2, 5, 8\\]"),
    "k_shape": (dict(k=f32(2, 3, 5, 8)), "input 'k' has shape \\[2, 3, 5, 8\\] but 'q' has shape \\[2, 2, 5, 8\\]"),
    "v_shape": (dict(v=f32(2, 2, 5, 4)), "input 'v' has shape \\[2, 2, 5, 4\\] but 'q' has shape \\[2, 2, 5, 8\\]"),
    "v_rank": (dict(v=f32(2, 2, 5, 8, 1)), "input 'v' must have rank 4"),
    "e_rank": (dict(e=f32(2, 2, 5, 8)), "input 'e' must have rank 5 \\[B, H, N, N, d\\], got shape \\[2, 2, 5, 8\\]"),
    "e_shape_N": (dict(e=f32(2, 2, 5, 4, 8)), "input 'e' must have shape \\[B, H, N, N, d\\] = \\[2, 2, 5, 5, 8\\]"),
    "e_shape_d": (dict(e=f32(2, 2, 5, 5, 3)), "input 'e' must have shape \\[B, H, N, N, d\\] = \\[2, 2, 5, 5, 8\\]"),
    "e_shape_B": (dict(e=f32(1, 2, 5, 5, 8)), "input 'e' must have shape .* got \\[1, 2, 5, 5, 8\\]"),
    "adj_rank": (dict(adj=np.ones((5, 5), bool)), "input 'adj' must have rank 3 \\[B, N, N\\], got shape \\[5, 5\\]"),
    "adj_shape_N": (
        dict(adj=np.ones((2, 5, 6), bool)),
        "input 'adj' must have shape \\[B, N, N\\] = \\[2, 5, 5\\], got \\[2, 5, 6\\]",
    ),
    "adj_shape_B": (
        dict(adj=np.ones((3, 5, 5), bool)),
        "input 'adj' must have shape \\[B, N, N\\] = \\[2, 5, 5\\], got \\[3, 5, 5\\]",
    ),
    "adj_float": (dict(adj=np.ones((2, 5, 5), np.float32)), "input 'adj' must be bool, got float32"),
    "adj_uint8": (dict(adj=np.ones((2, 5, 5), np.uint8)), "input 'adj' must be bool, got uint8"),
    "q_float64": (dict(q=np.ones((2, 2, 5, 8))), "input 'q' must be float32, got float64"),
    "e_float64": (dict(e=np.ones((2, 2, 5, 5, 8))), "input 'e' must be float32, got float64"),
    "k_int64": (dict(k=np.ones((2, 2, 5, 8), np.int64)), "input 'k' must be float32, got int64"),
    "missing_self_loop": (
        dict(adj=_no_self_loop(1, 3)),
        "input 'adj' lacks the self-loop of node 3 in batch 1 \\(adj\\[1, 3, 3\\] is false\\)",
    ),
    "missing_self_loop_first": (dict(adj=_no_self_loop(0, 0)), "input 'adj' lacks the self-loop of node 0 in batch 0"),
    "missing_self_loop_padded": (
        dict(adj=np.eye(5, dtype=bool)[None].repeat(2, 0) & ~np.eye(5, dtype=bool)[4]),
        "input 'adj' lacks the self-loop of node 4 in batch 0",
    ),
    "no_edges_at_all": (dict(adj=np.zeros((2, 5, 5), bool)), "input 'adj' lacks the self-loop of node 0 in batch 0"),
}


def _kernel_rejects() -> tuple[dict, dict, str]:
    # a missing self-loop: the kernel refuses it, the portable body silently computes
    feeds, _ = make_case(np.random.default_rng(1), 1, 2, 4, 8, density=0.5)
    feeds["adj"][0, 2, 2] = False
    return feeds, {}, "input 'adj' lacks the self-loop of node 2 in batch 0"


CASES = OpCases(
    op=OP,
    inputs=inputs,
    reference=lambda feeds, a: list(reference.edge_graph_attention(**feeds, clamp=a["clamp"])),
    torch_op=run_torch,
    random_cases=random_cases,
    edge_cases=EDGE_CASES,
    outputs=("h", "e_out"),
    tol=TOL,
    good_feeds=_feeds,
    good_attrs={},
    bad_inputs={name: ({**_feeds(), **override}, message) for name, (override, message) in BAD_RUN_INPUTS.items()},
    bad_attributes=[
        (dict(clamp=0.0), "attribute 'clamp' must be finite and > 0, got 0(?![\\d.])"),
        (dict(clamp=-1.0), "attribute 'clamp' must be finite and > 0, got -1(?![\\d.])"),
        (dict(clamp=float("nan")), "attribute 'clamp' must be finite and > 0, got nan"),
        (dict(clamp=float("inf")), "attribute 'clamp' must be finite and > 0, got inf"),
    ],
    portable_bad_attributes=[
        (dict(clamp=0.0), "clamp must be finite and > 0"),
        (dict(clamp=-2.0), "clamp must be finite and > 0"),
        (dict(clamp=float("nan")), "clamp must be finite and > 0"),
        (dict(clamp=float("inf")), "clamp must be finite and > 0, got inf"),
        (dict(clamp=5), "attribute 'clamp' must be a float, got an int"),
        (dict(clamp="5"), "attribute 'clamp' must be a float, got a string"),
        (dict(clamp=[5.0]), "attribute 'clamp' must be a float, got a list of floats"),
        (dict(clamps=5.0), "unknown attribute\\(s\\) \\['clamps'\\]; known: \\['clamp'\\]"),
    ],
    kernel_rejects=_kernel_rejects,
    empty_cases={
        f"{B}-{H}-{N}-{d}": dict(B=B, H=H, N=N, d=d, density=0.5)
        for B, H, N, d in [(0, 2, 5, 8), (2, 0, 5, 8), (2, 3, 0, 8), (2, 3, 5, 0)]
    },
    output_shapes=lambda feeds: [feeds["q"].shape, feeds["e"].shape],
)

globals().update(op_tests(CASES))


# clamp >= 88: exp(clamp) overflows float32, so every form weighs relative to the row's largest logit
LARGE_CLAMP_CASES = {
    f"clamp{c:g}_q{q:g}": dict(B=2, H=2, N=12, d=16, density=0.6, clamp=c, q_scale=q, e_kind="positive")
    for c, q in [(88.0, 40.0), (100.0, 60.0), (300.0, 200.0), (700.0, 500.0), (100.0, -60.0)]
}


@pytest.mark.parametrize("case", [pytest.param(c, id=n) for n, c in LARGE_CLAMP_CASES.items()])
def test_large_clamp_matches_reference_in_every_form(case):
    # A float32 logit of size ~clamp carries a rounding error of a few ulps of clamp, and exp turns it into that
    # relative error of the weight: at clamp 700 the weights are known to ~4 * 700 * 2^-24 = 1.7e-4, not 1e-5
    # (seen: 1.13e-5 at clamp 700 with FINSTA_TEST_SEED=140990848296605763383009316322202439928).
    CASES.check_forms(case, ["cpu_kernel", "portable", "torch"], tol=max(TOL, 4 * case["clamp"] * 2.0**-24))


def test_default_clamp_is_5_in_every_form():
    feeds, _ = make_case(np.random.default_rng(2), 1, 2, 6, 8, density=1.0, q_scale=20.0)
    ref = reference.edge_graph_attention(**feeds, clamp=5.0)
    for form in ("cpu_kernel", "portable"):
        model = edge_graph_attention_model()  # no clamp attribute
        if form == "portable":
            model = attach_portable_functions(model)
        h, e_out = session(model, library="cpu" if form == "cpu_kernel" else None).run(None, feeds)
        assert max_rel_err(h, ref[0]) <= TOL and max_rel_err(e_out, ref[1]) <= TOL, form
