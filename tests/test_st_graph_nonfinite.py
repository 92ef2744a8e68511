"""STGraphAttention's non-finite and extreme-magnitude policy in every form (docs/ops.md, issue 14).

A NaN or +-inf in x makes the token's similarities NaN, and a NaN edge is kept (S >= tau or NaN), so the
NaN reaches every output that uses one of the token's edges; x is normalised as (x / m) / |x / m| with
m = max_c |x_c|, so |x| ~ 1e20 (whose float32 squared sum overflows) keeps its graph. The eager op, an
exported model run with the finsta op library (the custom kernel) and the same model with its portable
function in stock ONNX Runtime must all give the float64 reference's NaN pattern and, elsewhere, its
values. The reference's NaN pattern is itself checked against the band (which outputs a bad token
reaches). Fresh seeded inputs; a failure prints FINSTA_TEST_SEED=<seed> and the case, which replay it.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import reference
import torch
from helpers import IR_VERSION, SEED, case_rng, replay_hint, session
from test_op_safety import st_reached

from finsta.export import attach_portable_functions
from finsta.nn import STGraphAttention

B, H, T, P, d, D, R = 2, 2, 4, 3, 8, 6, 1
L = T * P
TOL = 1e-5
MARGIN = 1e-4  # no in-band similarity this close to tau: float32 rounding must not decide an edge
TAUS = (0.1, -1.0)  # -1 keeps every in-band edge, also the near-zero weights of tiny tokens


class Attention(torch.nn.Module):
    def __init__(self, tau: float):
        super().__init__()
        self.att = STGraphAttention(tokens_per_frame=P, sim_threshold=tau, frame_radius=R)

    def forward(self, x, q, k, v):
        return self.att(x, q, k, v)


@pytest.fixture(scope="module", params=TAUS, ids=lambda t: f"tau={t}")
def forms(request) -> tuple[float, dict]:
    """tau and the three forms: name -> run(feeds) -> out [B, H, L, d]."""
    tau = request.param
    model = Attention(tau).eval()
    example = tuple(torch.zeros(s) for s in ((B, L, D), (B, H, L, d), (B, H, L, d), (B, H, L, d)))
    proto = torch.onnx.export(model, example, dynamo=True, verbose=False).model_proto
    proto.ir_version = min(proto.ir_version, IR_VERSION)
    portable = attach_portable_functions(onnx.ModelProto.FromString(proto.SerializeToString()))
    custom_sess, portable_sess = session(proto, library="cpu"), session(portable, library=None)
    names = [i.name for i in custom_sess.get_inputs()]

    def eager(feeds: dict) -> np.ndarray:
        with torch.no_grad():
            return model(*(torch.from_numpy(feeds[n]) for n in "xqkv")).numpy()

    def onnx_form(sess):
        return lambda feeds: sess.run(None, dict(zip(names, (feeds[n] for n in "xqkv"), strict=True)))[0]

    return tau, {"eager": eager, "custom_kernel": onnx_form(custom_sess), "portable": onnx_form(portable_sess)}


def draw_x(rng: np.random.Generator, tau: float) -> np.ndarray:
    """x [B, L, D] with correlated tokens (some edges kept, some dropped at tau = 0.1) and no in-band
    similarity within MARGIN of tau."""
    frame = np.arange(L) // P
    band = (np.abs(frame[:, None] - frame[None, :]) <= R) & ~np.eye(L, dtype=bool)
    for _ in range(100):
        x = rng.standard_normal((B, L, D)) + rng.standard_normal((B, 1, D)) * rng.uniform(0, 2)
        _, S = reference.st_graph_attention_edges(x, P, R, tau)
        if np.all(np.abs(S[:, band] - tau) >= MARGIN):
            return x.astype(np.float32)
    raise AssertionError(f"no x without a near-threshold similarity in 100 draws (FINSTA_TEST_SEED={SEED})")


def reached(bad: list[tuple[int, int]]) -> np.ndarray:
    """[B, H, L, d] bool: the outputs the non-finite tokens (b, i) reach through their edges."""
    mask = np.zeros((B, L), bool)
    for b, i in bad:
        mask[b] |= st_reached(L, P, R, [i])
    return np.broadcast_to(mask[:, None, :, None], (B, H, L, d))


def check_forms(forms: dict, feeds: dict, tau: float, expected_nan: np.ndarray, context: str) -> None:
    with replay_hint(context):
        ref = reference.st_graph_attention(**feeds, P=P, r=R, tau=tau)
        assert np.array_equal(np.isnan(ref), expected_nan), "the reference's NaN pattern is not the band's"
        assert np.all(np.isfinite(ref[~expected_nan])), "the reference has inf outside the reached outputs"
        for name, run in forms.items():
            out = run(feeds)
            assert out.shape == ref.shape, name
            nan = np.isnan(out)
            assert np.array_equal(nan, expected_nan), (
                f"{name}: NaN at {np.argwhere(nan & ~expected_nan)[:5].tolist()} (should be finite), missing at "
                f"{np.argwhere(~nan & expected_nan)[:5].tolist()} ({int(nan.sum())} NaN, {int(expected_nan.sum())} due)"
            )
            fin = ~expected_nan
            if fin.any():
                assert np.all(np.isfinite(out[fin])), f"{name}: inf where the reference is finite"
                err = np.max(np.abs(out[fin] - ref[fin])) / max(np.max(np.abs(ref[fin])), 1e-30)
                assert err <= TOL, f"{name}: max relative error {err:.3g} > {TOL} on the finite outputs"


def qkv(rng: np.random.Generator) -> dict:
    return {n: rng.standard_normal((B, H, L, d)).astype(np.float32) for n in "qkv"}


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("where", ["one_element", "whole_token", "two_tokens", "first_and_last"])
def test_non_finite_x_reaches_exactly_the_outputs_it_touches(forms, value, where):
    tau, runs = forms
    case = dict(test="non_finite", value=str(value), where=where, tau=tau)
    rng = case_rng(SEED, case)
    x = draw_x(rng, tau)
    b, i = int(rng.integers(B)), int(rng.integers(L))
    bad = {
        "one_element": [(b, i)],
        "whole_token": [(b, i)],
        "two_tokens": [(b, i), (1 - b, int(rng.integers(L)))],
        "first_and_last": [(0, 0), (B - 1, L - 1)],
    }[where]
    for bb, ii in bad:
        if where == "whole_token":
            x[bb, ii] = value
        else:
            x[bb, ii, int(rng.integers(D))] = value
    check_forms(runs, dict(x=x, **qkv(rng)), tau, reached(bad), f"case={case} bad tokens (b, i)={bad}")


@pytest.mark.parametrize("magnitude", [1e19, 1e20, 1e30, 3e38, 1e-30])
@pytest.mark.parametrize("scope", ["all_tokens", "some_tokens"])
def test_extreme_magnitudes_keep_the_graph(forms, magnitude, scope):
    """|x|^2 overflows float32 above ~1.8e19 (and underflows below ~1e-19): the graph must stay the float64
    one, also when only some tokens are extreme (the scaling is per token)."""
    tau, runs = forms
    case = dict(test="magnitude", magnitude=magnitude, scope=scope, tau=tau)
    rng = case_rng(SEED, case)
    x = draw_x(rng, tau).astype(np.float64)
    rows = np.ones((B, L), bool) if scope == "all_tokens" else rng.random((B, L)) < 0.5
    peak = np.abs(x).max(axis=-1, keepdims=True)
    x = np.where(rows[..., None], x / peak * magnitude, x).astype(np.float32)
    assert np.all(np.isfinite(x)), case
    check_forms(runs, dict(x=x, **qkv(rng)), tau, np.zeros((B, H, L, d), bool), f"case={case}")


def test_non_finite_and_huge_together(forms):
    """A NaN token among tokens of size 1e20: the NaN reaches its band, the rest keeps the float64 graph."""
    tau, runs = forms
    case = dict(test="nan_and_huge", tau=tau)
    rng = case_rng(SEED, case)
    x = draw_x(rng, tau)
    x = (x / np.abs(x).max(axis=-1, keepdims=True) * np.float32(1e20)).astype(np.float32)
    b, i = int(rng.integers(B)), int(rng.integers(L))
    x[b, i, int(rng.integers(D))] = np.nan
    check_forms(runs, dict(x=x, **qkv(rng)), tau, reached([(b, i)]), f"case={case} bad token (b, i)=({b}, {i})")
