"""STGraphAttention's band-sparse eager form (the training path) against the dense reference form and the
float64 reference: same outputs and gradients on random and edge cases, float64 gradcheck, and no
[B, H, L, L] (nor [B, L, L]) tensor anywhere in its forward and backward.

Fresh seeded inputs (tests/helpers.py); a failure prints FINSTA_TEST_SEED=<seed> and the case, which replay it.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference
import torch
from helpers import SEED, case_rng, replay_hint
from test_st_graph_attention import make_case
from torch.utils._python_dispatch import TorchDispatchMode

from finsta.nn import st_graph_attention
from finsta.nn.st_graph_attention import st_graph_attention_dense

TOL = 1e-5  # float32, relative to the largest value
TOL64 = 1e-10  # float64
FLOOR = 1e-3  # error relative to max(max |reference|, FLOOR): a gradient the definition makes exactly 0 (a row
# with only its self-loop) may come out as rounding residue (~1e-17) in either form; the inputs are O(1)

CASES = {
    "window": dict(B=2, H=3, T=6, P=5, d=8, D=6, r=1, tau=0.2),
    "window_r2": dict(B=1, H=2, T=7, P=3, d=8, D=4, r=2, tau=0.0),
    "radius_0": dict(B=2, H=2, T=5, P=4, d=8, D=6, r=0, tau=0.3),
    "one_frame": dict(B=2, H=2, T=1, P=9, d=8, D=6, r=1, tau=0.1),
    "radius_ge_T": dict(B=1, H=2, T=3, P=6, d=8, D=6, r=5, tau=0.1),
    "radius_int64_max": dict(B=1, H=1, T=4, P=3, d=8, D=4, r=2**63 - 1, tau=0.1),
    "two_r_plus_1_eq_T": dict(B=1, H=2, T=3, P=4, d=8, D=4, r=1, tau=0.1),
    "tau_above_1": dict(B=2, H=2, T=5, P=4, d=8, D=6, r=1, tau=1.1),  # self-loops only
    "tau_minus_1": dict(B=1, H=2, T=5, P=4, d=8, D=4, r=1, tau=-1.0),  # every in-band edge
    "masked_rows": dict(B=2, H=2, T=5, P=4, d=8, D=6, r=1, tau=0.2, zero_tokens=6),  # zero x: self-loop only
    "one_token_per_frame": dict(B=1, H=2, T=9, P=1, d=8, D=4, r=2, tau=0.0),
    "explicit_scale": dict(B=1, H=2, T=4, P=3, d=8, D=4, r=1, tau=0.2, scale=0.7),
    "batch_0": dict(B=0, H=2, T=3, P=3, d=8, D=4, r=1, tau=0.1),
    "no_token": dict(B=2, H=2, T=0, P=3, d=8, D=4, r=1, tau=0.1),
}


def draw(name: str, dtype: torch.dtype = torch.float32) -> tuple[dict, dict, dict]:
    """(tensors x, q, k, v and an output gradient g, the op's attributes, the case) for CASES[name]."""
    case = dict(CASES[name])
    rng = case_rng(SEED, dict(test="band", name=name))
    feeds, p = make_case(rng, zero_tokens=case.pop("zero_tokens", 0), scale=case.pop("scale", None), **case)
    t = {n: torch.from_numpy(a).to(dtype) for n, a in feeds.items()}
    t["g"] = torch.from_numpy(rng.standard_normal(feeds["q"].shape)).to(dtype)
    attrs = dict(tokens_per_frame=p["P"], sim_threshold=p["tau"], frame_radius=p["r"], scale=p["scale"])
    return t, attrs, case


def forward_backward(form, t: dict, attrs: dict) -> list[torch.Tensor]:
    q, k, v = (t[n].clone().requires_grad_(True) for n in "qkv")
    out = form(t["x"], q, k, v, **attrs)
    out.backward(t["g"])
    return [out.detach(), q.grad, k.grad, v.grad]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    if b.numel() == 0:
        return 0.0 if a.shape == b.shape else float("inf")
    return float((a - b).abs().max() / b.abs().max().clamp_min(FLOOR))


@pytest.mark.parametrize("name", list(CASES))
def test_band_equals_dense_and_reference(name):
    """Outputs and q, k, v gradients of the band form equal the dense form's (float32 and float64) and the
    output equals the float64 numpy reference."""
    t, attrs, case = draw(name)
    with replay_hint(f"case={name} {case} tau={attrs['sim_threshold']}"):
        band, dense = (
            forward_backward(st_graph_attention, t, attrs),
            forward_backward(st_graph_attention_dense, t, attrs),
        )
        for what, a, b in zip(("out", "dq", "dk", "dv"), band, dense, strict=True):
            assert a.shape == b.shape, what
            assert rel_err(a, b) <= TOL, f"{what}: band vs dense relative error {rel_err(a, b):.3g} > {TOL}"
        if t["x"].shape[1]:  # (the reference needs a token)
            feeds, a = {n: t[n].numpy() for n in "xqkv"}, attrs
            ref = reference.st_graph_attention(
                **feeds, P=a["tokens_per_frame"], r=a["frame_radius"], tau=a["sim_threshold"], scale=a["scale"]
            )
            assert rel_err(band[0].double(), torch.from_numpy(ref)) <= TOL, "band vs the float64 reference"
        t64 = {n: v.double() for n, v in t.items()}
        band64, dense64 = (
            forward_backward(st_graph_attention, t64, attrs),
            forward_backward(st_graph_attention_dense, t64, attrs),
        )
        for what, a, b in zip(("out", "dq", "dk", "dv"), band64, dense64, strict=True):
            assert rel_err(a, b) <= TOL64, f"float64 {what}: band vs dense relative error {rel_err(a, b):.3g}"


@pytest.mark.parametrize(
    "shape",
    [
        dict(B=1, H=1, T=4, P=2, d=3, D=3, r=1, tau=0.1),  # windows, edge frames shifted into the clip
        dict(B=2, H=1, T=2, P=2, d=2, D=3, r=1, tau=-1.0),  # the window is the clip
        dict(B=1, H=2, T=5, P=1, d=2, D=2, r=0, tau=0.0),
    ],
    ids=["window", "whole_clip", "radius_0"],
)
def test_gradcheck_float64(shape):
    rng = case_rng(SEED, dict(test="band_gradcheck", **shape))
    B, H, T, P, d, D, r, tau = (shape[n] for n in ("B", "H", "T", "P", "d", "D", "r", "tau"))
    L = T * P
    x = torch.from_numpy(rng.standard_normal((B, L, D)) + rng.standard_normal((B, 1, D)))
    q, k, v = (torch.from_numpy(rng.standard_normal((B, H, L, d))).requires_grad_(True) for _ in range(3))
    with replay_hint(f"case={shape}"):
        assert torch.autograd.gradcheck(lambda q, k, v: st_graph_attention(x, q, k, v, P, tau, r), (q, k, v))


class _Shapes(TorchDispatchMode):
    """Records the shape of every tensor an aten op returns."""

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[str, tuple]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(o, torch.Tensor):
                self.shapes.append((str(func), tuple(o.shape)))
        return out


def test_band_form_never_builds_an_L_by_L_tensor():
    """Forward and backward of the training path: no tensor with two axes of length L ([B, L, L] or
    [B, H, L, L]), the largest being the band buffer [B, H, T, P, (2r + 1) P] (the dense form, as a check of
    the check, makes them)."""
    B, H, T, P, d, D, r = 1, 2, 8, 6, 4, 4, 1
    L = T * P
    x = torch.randn(B, L, D)
    qkv = [torch.randn(B, H, L, d, requires_grad=True) for _ in range(3)]
    for form, dense in ((st_graph_attention_dense, True), (st_graph_attention, False)):
        with _Shapes() as rec:
            form(x, *qkv, P, 0.1, r).sum().backward()
        square = [s for s in rec.shapes if s[1].count(L) >= 2]
        assert bool(square) == dense, f"{form.__name__}: tensors with two axes of length L={L}: {square[:3]}"
        if not dense:
            largest = max(rec.shapes, key=lambda s: np.prod(s[1]))
            assert np.prod(largest[1]) == B * H * L * (2 * r + 1) * P, f"largest tensor {largest}"
