"""The CUDA kernels on a GPU through ONNX Runtime's CUDA execution provider, against the CPU kernel
and the float64 reference. Skipped where onnxruntime-gpu or a GPU is absent; the CPU twin of
these kernels is tests/test_cuda_twin.py, which runs everywhere."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import finsta_rt
import reference
import test_edge_graph_attention as edge
import test_gaussian_diff_graph_attention as gauss
from helpers import (edge_graph_attention_model, gaussian_diff_graph_attention_model, max_rel_err, session,
                     st_graph_attention_model)
from test_st_graph_attention import SEED, TOL, make_case, random_cases

pytestmark = pytest.mark.gpu


def _cuda_session(model):
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("needs onnxruntime-gpu with the CUDA execution provider (this machine has none)")
    so = ort.SessionOptions()
    finsta_rt.register(so, "cuda")
    try:
        return ort.InferenceSession(model.SerializeToString(), so, providers=["CUDAExecutionProvider"])
    except Exception as e:  # provider present but no usable device
        pytest.skip(f"CUDA execution provider unusable here: {e}")


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


@pytest.mark.parametrize("case", [pytest.param(c, id=f"random{i}") for i, c in enumerate(edge.random_cases(50, SEED))]
                         + [pytest.param(c, id=n) for n, c in edge.EDGE_CASES.items()])
def test_edge_graph_attention_cuda_matches_cpu_kernel_and_reference(case):
    feeds, p = edge.make_case(np.random.default_rng([SEED, 19]), **case)
    model = edge_graph_attention_model(clamp=p["clamp"])
    outs = _cuda_session(model).run(None, feeds)
    cpu = session(model).run(None, feeds)
    for out, c, ref in zip(outs, cpu, reference.edge_graph_attention(**feeds, clamp=p["clamp"])):
        assert max_rel_err(out, ref) <= TOL and max_rel_err(out, c.astype(np.float64)) <= TOL


@pytest.mark.parametrize("case", [pytest.param(c, id=f"random{i}") for i, c in enumerate(gauss.random_cases(50, SEED))]
                         + [pytest.param(c, id=n) for n, c in gauss.EDGE_CASES.items()])
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
    with pytest.raises(Exception, match="GaussianDiffGraphAttention: input 'sigma' must be finite and > 0, got sigma\\[1, 2\\] = nan"):
        _cuda_session(gaussian_diff_graph_attention_model()).run(None, feeds)
