"""The CUDA kernels on a GPU through ONNX Runtime's CUDA execution provider, against the CPU kernel
and the float64 reference. Skipped where onnxruntime-gpu or a GPU is absent; the CPU twin of
these kernels is tests/test_cuda_twin.py, which runs everywhere."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import finsta_rt
import reference
from helpers import max_rel_err, session, st_graph_attention_model
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
