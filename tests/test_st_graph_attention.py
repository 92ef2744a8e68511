"""STGraphAttention: CPU kernel, portable function and PyTorch op against the float64 reference.

Every case draws fresh random inputs. A similarity lying within 1e-5 of the threshold would make
the edge decision depend on float32 rounding, so the threshold is nudged into the nearest gap
among the case's similarities (float32 error in S is below 1e-6 at these sizes).
"""

from __future__ import annotations


import numpy as np
import pytest
from onnx import TensorProto

import reference
from helpers import assert_errors_within, case_rng, form_errors, fresh_seed, selected_forms, session, st_graph_attention_model
from finsta.export import attach_portable_functions

TOL = 1e-5
MARGIN = 1e-5
SEED = fresh_seed()  # fresh inputs each run; a failure prints it (FINSTA_TEST_SEED replays it)


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
    cands = np.concatenate([[vals[0] - 2 * MARGIN], ((vals[:-1] + vals[1:]) / 2)[gaps > 4 * MARGIN], [vals[-1] + 2 * MARGIN]])
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
        cases.append(dict(
            B=int(rng.integers(1, 4)), H=int(rng.integers(1, 9)), T=int(rng.integers(1, 10)),
            P=int(rng.integers(1, 65)), d=int(rng.integers(8, 65)), D=int(rng.integers(4, 97)),
            r=int(rng.integers(0, 4)), tau=float(rng.uniform(-1.0, 1.2)),
            zero_tokens=int(rng.integers(0, 3)),
        ))
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
}


def all_cases():
    return [pytest.param(c, id=f"random{i}") for i, c in enumerate(random_cases(52, SEED))] + [
        pytest.param(c, id=name) for name, c in EDGE_CASES.items()
    ]


def _attrs(p):
    a = dict(tokens_per_frame=p["P"], frame_radius=p["r"], sim_threshold=p["tau"])
    if p["scale"] is not None:
        a["scale"] = p["scale"]
    return a


def _run_all_forms(case, forms):
    rng = case_rng(SEED, case)
    c = dict(case)
    zero = c.pop("zero_tokens", 0)
    scale = c.pop("scale", None)
    feeds, p = make_case(rng, zero_tokens=zero, scale=scale, **c)
    ref = reference.st_graph_attention(**feeds, P=p["P"], r=p["r"], tau=p["tau"], scale=p["scale"])
    errs = {}
    for form in selected_forms(forms):
        if form == "cpu_kernel":
            out = session(st_graph_attention_model(**_attrs(p))).run(None, feeds)[0]
        elif form == "cuda_library_cpu_kernel":
            out = session(st_graph_attention_model(**_attrs(p)), library="cuda").run(None, feeds)[0]
        elif form == "portable":
            model = attach_portable_functions(st_graph_attention_model(**_attrs(p)))
            out = session(model, library=None).run(None, feeds)[0]
        elif form == "torch":
            import torch
            from finsta.nn import st_graph_attention

            t = {k: torch.from_numpy(v) for k, v in feeds.items()}
            out = st_graph_attention(t["x"], t["q"], t["k"], t["v"], p["P"], p["tau"], p["r"], p["scale"]).numpy()
        errs.update(form_errors(form, [out], [ref]))
    assert_errors_within(errs, TOL, f"FINSTA_TEST_SEED={SEED} case={case} tau={p['tau']}")


@pytest.mark.parametrize("case", all_cases())
def test_matches_float64_reference(case):
    _run_all_forms(case, ["cpu_kernel", "portable", "torch"])


@pytest.mark.parametrize("case", [pytest.param(c, id=f"random{i}") for i, c in enumerate(random_cases(8, SEED))])
def test_cuda_library_runs_its_cpu_kernel_without_a_gpu(case):
    # The CUDA build registers the CPU kernel too (a CUDA-only registration breaks CPU sessions).
    _run_all_forms(case, ["cuda_library_cpu_kernel"])


def test_empty_batch_gives_empty_output():
    feeds = dict(x=np.zeros((0, 6, 4), np.float32), **{n: np.zeros((0, 2, 6, 8), np.float32) for n in "qkv"})
    out = session(st_graph_attention_model(tokens_per_frame=3, sim_threshold=0.1)).run(None, feeds)[0]
    assert out.shape == (0, 2, 6, 8)


def test_kernel_is_used_when_library_registered_even_with_portable_function():
    # A portable model must run our kernel once the library is registered: the kernel names
    # itself in its errors, while the portable body would silently accept L % P != 0.
    model = attach_portable_functions(st_graph_attention_model(tokens_per_frame=4, sim_threshold=0.1))
    feeds = dict(x=np.ones((1, 6, 4), np.float32), **{n: np.ones((1, 1, 6, 8), np.float32) for n in "qkv"})
    with pytest.raises(Exception, match="STGraphAttention: L=6 tokens is not a multiple of tokens_per_frame=4"):
        session(model).run(None, feeds)
    session(model, library=None).run(None, feeds)  # stock ORT: the function body runs


# ---- bad inputs: each must give an ORT error naming the op and the problem, never a crash ----

def _feeds(B=1, L=6, D=4, H=2, d=8, *, qshape=None, kshape=None, vshape=None, xshape=None, dtype=np.float32):
    rng = np.random.default_rng(0)
    f = lambda s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    return dict(x=f(xshape or (B, L, D)), q=f(qshape or (B, H, L, d)), k=f(kshape or (B, H, L, d)), v=f(vshape or (B, H, L, d)))


BAD_RUN_INPUTS = {
    "L_not_multiple_of_P": (_feeds(L=7), "L=7 tokens is not a multiple of tokens_per_frame=3"),
    "batch_mismatch": (_feeds(xshape=(2, 6, 4)), "batch mismatch: 'x' has B=2 but 'q' has B=1"),
    "token_mismatch": (_feeds(xshape=(1, 9, 4)), "token-count mismatch: 'x' has L=9 but 'q' has L=6"),
    "heads_mismatch": (_feeds(kshape=(1, 3, 6, 8)), "input 'k' has shape \\[1, 3, 6, 8\\] but 'q' has shape \\[1, 2, 6, 8\\]"),
    "head_dim_mismatch": (_feeds(vshape=(1, 2, 6, 4)), "input 'v' has shape \\[1, 2, 6, 4\\]"),
    "k_batch_mismatch": (_feeds(kshape=(2, 2, 6, 8)), "input 'k' has shape \\[2, 2, 6, 8\\]"),
    "x_rank": (dict(_feeds(), x=np.ones((6, 4), np.float32)), "input 'x' must have rank 3 \\[B, L, D\\], got shape \\[6, 4\\]"),
    "q_rank": (dict(_feeds(), q=np.ones((1, 6, 8), np.float32)), "input 'q' must have rank 4 \\[B, H, L, d\\]"),
}


@pytest.mark.parametrize("name", list(BAD_RUN_INPUTS))
def test_bad_input_shapes_give_clear_errors(name):
    feeds, message = BAD_RUN_INPUTS[name]
    sess = session(st_graph_attention_model(ranked=False, tokens_per_frame=3, sim_threshold=0.1))
    with pytest.raises(Exception, match="STGraphAttention: " + message):
        sess.run(None, feeds)


@pytest.mark.parametrize("dtype,onnx_type,name", [(np.int64, TensorProto.INT64, "int64"), (np.int32, TensorProto.INT32, "int32"),
                                                   (np.float64, TensorProto.DOUBLE, "float64")])
def test_wrong_dtype_gives_clear_error(dtype, onnx_type, name):
    sess = session(st_graph_attention_model(dtype=onnx_type, ranked=False, tokens_per_frame=3, sim_threshold=0.1))
    with pytest.raises(Exception, match=f"STGraphAttention: input 'x' must be float32, got {name}"):
        sess.run(None, _feeds(dtype=dtype))


@pytest.mark.parametrize("attrs,message", [
    (dict(tokens_per_frame=0, sim_threshold=0.1), "attribute 'tokens_per_frame' must be > 0, got 0"),
    (dict(tokens_per_frame=-3, sim_threshold=0.1), "attribute 'tokens_per_frame' must be > 0, got -3"),
    (dict(tokens_per_frame=3, sim_threshold=0.1, frame_radius=-1), "attribute 'frame_radius' must be >= 0, got -1"),
    (dict(tokens_per_frame=3), "required float attribute 'sim_threshold' is missing"),
    (dict(sim_threshold=0.1), "required int attribute 'tokens_per_frame' is missing"),
    (dict(tokens_per_frame=3, sim_threshold=float("nan")), "attribute 'sim_threshold' is NaN"),
    (dict(tokens_per_frame=3, sim_threshold=0.1, scale=0.0), "attribute 'scale' must be finite and > 0"),
])
def test_bad_attributes_give_clear_errors(attrs, message):
    with pytest.raises(Exception, match="STGraphAttention: " + message):
        session(st_graph_attention_model(**attrs)).run(None, _feeds())


@pytest.mark.parametrize("attrs,message", [
    (dict(tokens_per_frame=0, sim_threshold=0.1), "tokens_per_frame must be > 0"),
    (dict(tokens_per_frame=3, sim_threshold=0.1, frame_radius=-2), "frame_radius must be >= 0"),
    (dict(tokens_per_frame=3), "required attribute 'sim_threshold' is missing"),
])
def test_attach_portable_rejects_bad_attributes(attrs, message):
    with pytest.raises(ValueError, match=message):
        attach_portable_functions(st_graph_attention_model(**attrs))
