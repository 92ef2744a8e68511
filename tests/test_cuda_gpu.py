"""The CUDA kernels on a GPU through ONNX Runtime's CUDA execution provider, against the CPU kernel
and the float64 reference. Skipped only where onnxruntime has no CUDA execution provider or it has
no usable device; where it has one, a finsta CUDA library that fails to load or run fails the
tests. The CPU twin of these kernels is tests/test_cuda_twin.py, which runs everywhere."""

from __future__ import annotations

import functools

import numpy as np
import onnxruntime as ort
import pytest
import reference
import test_edge_graph_attention as edge
import test_gaussian_diff_graph_attention as gauss
from helpers import (
    IR_VERSION,
    edge_graph_attention_model,
    gaussian_diff_graph_attention_model,
    large_clamp_feeds,
    max_rel_err,
    session,
    st_graph_attention_model,
)
from onnx import TensorProto, helper
from test_st_graph_attention import SEED, TOL, make_case, random_cases

import finsta_rt

pytestmark = pytest.mark.gpu


@functools.lru_cache(maxsize=1)
def _cuda_device_problem() -> str | None:
    """Why no CUDA device is usable here (None when one is): onnxruntime without the CUDA execution
    provider, or a provider that cannot open a device for a stock one-node model. The finsta library
    plays no part, so a broken finsta CUDA library fails the tests below instead of skipping them."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "needs onnxruntime-gpu with the CUDA execution provider (this machine has none)"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    probe = helper.make_model(
        helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y]),
        opset_imports=[helper.make_opsetid("", 18)],
        ir_version=IR_VERSION,
    )
    try:
        sess = ort.InferenceSession(probe.SerializeToString(), providers=["CUDAExecutionProvider"])
    except Exception as e:  # provider present, no usable device
        return f"the CUDA execution provider has no usable device here: {e}"
    if "CUDAExecutionProvider" not in sess.get_providers():
        return "the CUDA execution provider has no usable device here (ORT fell back to the CPU)"
    return None


def _cuda_session(model):
    problem = _cuda_device_problem()
    if problem:
        pytest.skip(problem)
    so = ort.SessionOptions()
    finsta_rt.register(so, "cuda")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CUDAExecutionProvider"])
    assert sess.get_providers()[0] == "CUDAExecutionProvider", sess.get_providers()
    return sess


@pytest.mark.parametrize("case", [pytest.param(c, id=f"random{i}") for i, c in enumerate(random_cases(50, SEED))])
def test_cuda_kernel_matches_cpu_kernel_and_reference(case):
    c = dict(case)
    rng = np.random.default_rng([SEED, 11])
    feeds, p = make_case(rng, zero_tokens=c.pop("zero_tokens", 0), scale=c.pop("scale", None), **c)
    model = st_graph_attention_model(tokens_per_frame=p["P"], frame_radius=p["r"], sim_threshold=p["tau"])
    out = _cuda_session(model).run(None, feeds)[0]
    cpu = session(model).run(None, feeds)[0]
    ref = reference.st_graph_attention(**feeds, P=p["P"], r=p["r"], tau=p["tau"])
    assert max_rel_err(out, ref) <= TOL and max_rel_err(out, cpu.astype(np.float64)) <= TOL


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=f"random{i}") for i, c in enumerate(edge.random_cases(50, SEED))]
    + [pytest.param(c, id=n) for n, c in edge.EDGE_CASES.items()],
)
def test_edge_graph_attention_cuda_matches_cpu_kernel_and_reference(case):
    feeds, p = edge.make_case(np.random.default_rng([SEED, 19]), **case)
    model = edge_graph_attention_model(clamp=p["clamp"])
    outs = _cuda_session(model).run(None, feeds)
    cpu = session(model).run(None, feeds)
    for out, c, ref in zip(outs, cpu, reference.edge_graph_attention(**feeds, clamp=p["clamp"])):
        assert max_rel_err(out, ref) <= TOL and max_rel_err(out, c.astype(np.float64)) <= TOL


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=f"random{i}") for i, c in enumerate(gauss.random_cases(50, SEED))]
    + [pytest.param(c, id=n) for n, c in gauss.EDGE_CASES.items()],
)
def test_gaussian_diff_graph_attention_cuda_matches_cpu_kernel_and_reference(case):
    feeds = gauss.make_case(np.random.default_rng([SEED, 23]), **case)
    model = gaussian_diff_graph_attention_model()
    out = _cuda_session(model).run(None, feeds)[0]
    cpu = session(model).run(None, feeds)[0]
    ref = reference.gaussian_diff_graph_attention(**feeds)
    assert max_rel_err(out, ref) <= TOL and max_rel_err(out, cpu.astype(np.float64)) <= TOL


@pytest.mark.parametrize("op", ["EdgeGraphAttention", "GaussianDiffGraphAttention"])
def test_cuda_kernels_reject_a_missing_self_loop(op):
    if op == "EdgeGraphAttention":
        feeds, _ = edge.make_case(np.random.default_rng(0), 2, 2, 6, 8, density=0.5)
        model = edge_graph_attention_model()
    else:
        feeds = gauss.make_case(np.random.default_rng(0), 2, 2, 6, 8)
        model = gaussian_diff_graph_attention_model()
    feeds["adj"][1, 4, 4] = False
    feeds["adj"][1, 5, 5] = False
    with pytest.raises(Exception, match=f"{op}: input 'adj' lacks the self-loop of node 4 in batch 1"):
        _cuda_session(model).run(None, feeds)


def test_cuda_kernel_rejects_bad_sigma():
    feeds = gauss.make_case(np.random.default_rng(0), 1, 2, 6, 8)
    feeds["sigma"][1, 2] = np.nan
    with pytest.raises(
        Exception, match="GaussianDiffGraphAttention: input 'sigma' must be finite and > 0, got sigma\\[1, 2\\] = nan"
    ):
        _cuda_session(gaussian_diff_graph_attention_model()).run(None, feeds)


@pytest.mark.parametrize("r", [2**63 - 1, 2**63 - 2])
def test_cuda_kernel_clamps_a_huge_frame_radius(r):
    # the CUDA key count 2 r + 1 overflowed int64 before the radius was clamped to T - 1
    feeds, p = make_case(np.random.default_rng([SEED, 37]), B=1, H=2, T=8, P=4, d=8, D=6, r=7, tau=0.1)
    model = st_graph_attention_model(tokens_per_frame=4, frame_radius=r, sim_threshold=p["tau"])
    out = _cuda_session(model).run(None, feeds)[0]
    assert max_rel_err(out, reference.st_graph_attention(**feeds, P=4, r=7, tau=p["tau"])) <= TOL


def test_cuda_kernel_keeps_huge_x_and_propagates_nan():
    feeds, p = make_case(np.random.default_rng([SEED, 41]), B=1, H=2, T=4, P=5, d=8, D=16, r=1, tau=0.2)
    sess = _cuda_session(st_graph_attention_model(tokens_per_frame=5, frame_radius=1, sim_threshold=p["tau"]))
    big = dict(feeds, x=(feeds["x"] * np.float32(1e20)).astype(np.float32))
    assert max_rel_err(sess.run(None, big)[0], reference.st_graph_attention(**big, P=5, r=1, tau=p["tau"])) <= TOL
    feeds["x"][0, 7, 3] = np.nan  # token 7, frame 1: frames 0-2 see it
    out = sess.run(None, feeds)[0]
    assert np.all(np.isnan(out[0][:, :15])) and np.all(np.isfinite(out[0][:, 15:]))


def test_edge_graph_attention_cuda_is_exact_for_a_large_clamp():
    feeds = large_clamp_feeds()
    h = _cuda_session(edge_graph_attention_model(clamp=100.0)).run(None, feeds)[0]
    np.testing.assert_allclose(h, 1.0, rtol=1e-6)
