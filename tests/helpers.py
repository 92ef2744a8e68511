"""Shared test helpers: one-node finsta models and ONNX Runtime sessions."""

from __future__ import annotations

import os
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

import finsta_rt

IR_VERSION = 10  # onnx 1.23 writes 14 by default; onnxruntime 1.31 takes at most 13 (DESIGN.md §6)


def one_node_model(
    op_type: str,
    inputs: list[tuple[str, int, list]],
    outputs: list[tuple[str, int, list]],
    **attrs,
) -> onnx.ModelProto:
    """A model holding one finsta node; inputs/outputs as (name, onnx dtype, shape or None)."""
    node = helper.make_node(op_type, [n for n, _, _ in inputs], [n for n, _, _ in outputs], domain="finsta", **attrs)
    vi = [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs]
    vo = [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs]
    graph = helper.make_graph([node], op_type.lower(), vi, vo)
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("finsta", 1)],
        ir_version=IR_VERSION,
    )


def st_graph_attention_model(dtype: int = TensorProto.FLOAT, ranked: bool = True, **attrs) -> onnx.ModelProto:
    """A dynamic-shape one-node STGraphAttention model; ``ranked=False`` leaves input ranks open,
    so that the kernel's own checks, not ORT's, meet a wrong rank."""
    xs, qs = (["B", "L", "D"], ["B", "H", "L", "d"]) if ranked else (None, None)
    return one_node_model(
        "STGraphAttention",
        [("x", dtype, xs)] + [(n, dtype, qs) for n in "qkv"],
        [("out", TensorProto.FLOAT, None)],
        **attrs,
    )


def edge_graph_attention_model(dtypes: dict[str, int] | None = None, ranked: bool = True, **attrs) -> onnx.ModelProto:
    """A dynamic-shape one-node EdgeGraphAttention model (q, k, v, e float32 and adj bool unless
    ``dtypes`` says otherwise); ``ranked=False`` leaves input ranks open for the kernel's own checks."""
    t = {**dict(q=TensorProto.FLOAT, k=TensorProto.FLOAT, v=TensorProto.FLOAT, e=TensorProto.FLOAT,
                adj=TensorProto.BOOL), **(dtypes or {})}
    shapes = dict(q=["B", "H", "N", "d"], k=["B", "H", "N", "d"], v=["B", "H", "N", "d"],
                  e=["B", "H", "N", "N", "d"], adj=["B", "N", "N"])
    return one_node_model(
        "EdgeGraphAttention",
        [(n, t[n], shapes[n] if ranked else None) for n in ("q", "k", "v", "e", "adj")],
        [("h", TensorProto.FLOAT, None), ("e_out", TensorProto.FLOAT, None)],
        **attrs,
    )


def gaussian_diff_graph_attention_model(dtypes: dict[str, int] | None = None, ranked: bool = True) -> onnx.ModelProto:
    """A dynamic-shape one-node GaussianDiffGraphAttention model (q, k, v, pos, sigma float32 and
    adj bool unless ``dtypes`` says otherwise); ``ranked=False`` leaves input ranks open."""
    names = ("q", "k", "v", "pos", "adj", "sigma")
    t = {**{n: TensorProto.FLOAT for n in names}, "adj": TensorProto.BOOL, **(dtypes or {})}
    shapes = dict(q=["B", "H", "N", "d"], k=["B", "H", "N", "d"], v=["B", "H", "N", "d"], pos=["B", "N", 3],
                  adj=["B", "N", "N"], sigma=["H", 3])
    return one_node_model(
        "GaussianDiffGraphAttention",
        [(n, t[n], shapes[n] if ranked else None) for n in names],
        [("out", TensorProto.FLOAT, None)],
    )


def session(model: onnx.ModelProto, library: str | None = "cpu", threads: int = 0) -> ort.InferenceSession:
    """A CPU session; ``library`` 'cpu'/'cuda' registers that op library, None runs stock ORT."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    if library:
        finsta_rt.register(so, library)
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def max_rel_err(out: np.ndarray, ref: np.ndarray) -> float:
    """max |out - ref| / max |ref|: the error relative to the output's scale."""
    denom = max(float(np.max(np.abs(ref))), 1e-30) if ref.size else 1.0
    return float(np.max(np.abs(out.astype(np.float64) - ref))) / denom if ref.size else 0.0


def fresh_seed() -> int:
    """Fresh random inputs each run; FINSTA_TEST_SEED=<the seed a failure printed> replays them."""
    env = os.environ.get("FINSTA_TEST_SEED")
    return int(env) if env else int(np.random.SeedSequence().entropy)


def case_rng(seed: int, case: dict) -> np.random.Generator:
    """The inputs of one case: a function of the run's seed and the case only (crc32, not hash(),
    which Python salts per process, so a printed seed replays the same inputs)."""
    return np.random.default_rng([seed, zlib.crc32(repr(sorted(case.items())).encode())])


def selected_forms(forms: list[str]) -> list[str]:
    """``forms``, or only those named in FINSTA_TEST_FORMS (tests/test_sanitizers.py runs the kernel alone)."""
    only = os.environ.get("FINSTA_TEST_FORMS")
    return [f for f in forms if not only or f in only.split(",")]


def form_errors(form: str, outs: list[np.ndarray], refs: list[np.ndarray],
                names: tuple[str, ...] | None = None) -> dict[str, float]:
    """Max relative errors of one form's outputs against their float64 references (keys ``form`` or
    ``form.name``), after checking each output's shape and that it is finite."""
    errs = {}
    for i, (out, ref) in enumerate(zip(outs, refs, strict=True)):
        key = form if names is None else f"{form}.{names[i]}"
        assert out.shape == ref.shape, key
        assert np.all(np.isfinite(out)), key
        errs[key] = max_rel_err(out, ref)
    return errs


def assert_errors_within(errs: dict[str, float], tol: float, context: str) -> None:
    bad = {f: e for f, e in errs.items() if not e <= tol}
    assert not bad, f"{context}: relative errors {errs}"
