"""Shared test helpers: one-node finsta models, ONNX Runtime sessions, the run's seed and form selection."""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Iterator

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import finsta_rt

IR_VERSION = 10  # onnx 1.23 writes 14 by default; onnxruntime 1.31 takes at most 13 (docs/environment.md)


def one_node_model(
    op_type: str,
    inputs: list[tuple[str, int, list]],
    outputs: list[tuple[str, int, list]],
    **attrs,
) -> onnx.ModelProto:
    """A model holding one finsta node; inputs/outputs as (name, onnx dtype, shape or None)."""
    node = helper.make_node(
        op_type, [n for n, _, _ in inputs], [n for n, _, _ in outputs], domain=finsta_rt.OPS_DOMAIN, **attrs
    )
    vi = [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs]
    vo = [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs]
    graph = helper.make_graph([node], op_type.lower(), vi, vo)
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(finsta_rt.OPS_DOMAIN, finsta_rt.OPS_VERSION)],
        ir_version=IR_VERSION,
    )


# op -> (input name -> shape, output names, input dtypes other than float32): the one-node models' signatures
OP_SIGNATURES: dict[str, tuple[dict[str, list], tuple[str, ...], dict[str, int]]] = {
    "STGraphAttention": (
        dict(x=["B", "L", "D"], q=["B", "H", "L", "d"], k=["B", "H", "L", "d"], v=["B", "H", "L", "d"]),
        ("out",),
        {},
    ),
    "EdgeGraphAttention": (
        dict(
            q=["B", "H", "N", "d"],
            k=["B", "H", "N", "d"],
            v=["B", "H", "N", "d"],
            e=["B", "H", "N", "N", "d"],
            adj=["B", "N", "N"],
        ),
        ("h", "e_out"),
        dict(adj=TensorProto.BOOL),
    ),
    "GaussianDiffGraphAttention": (
        dict(
            q=["B", "H", "N", "d"],
            k=["B", "H", "N", "d"],
            v=["B", "H", "N", "d"],
            pos=["B", "N", 3],
            adj=["B", "N", "N"],
            sigma=["H", 3],
        ),
        ("out",),
        dict(adj=TensorProto.BOOL),
    ),
}


def op_model(op_type: str, dtypes: dict[str, int] | None = None, ranked: bool = True, **attrs) -> onnx.ModelProto:
    """A dynamic-shape one-node model of ``op_type`` (its inputs float32, adj bool, unless ``dtypes`` says
    otherwise); ``ranked=False`` leaves input ranks open, so that the kernel's own checks, not ORT's,
    meet a wrong rank."""
    shapes, outputs, default_dtypes = OP_SIGNATURES[op_type]
    t = {**default_dtypes, **(dtypes or {})}
    return one_node_model(
        op_type,
        [(n, t.get(n, TensorProto.FLOAT), s if ranked else None) for n, s in shapes.items()],
        [(n, TensorProto.FLOAT, None) for n in outputs],
        **attrs,
    )


def st_graph_attention_model(dtype: int = TensorProto.FLOAT, ranked: bool = True, **attrs) -> onnx.ModelProto:
    """:func:`op_model` of STGraphAttention, every input of type ``dtype``."""
    return op_model("STGraphAttention", {n: dtype for n in "xqkv"}, ranked, **attrs)


def edge_graph_attention_model(dtypes: dict[str, int] | None = None, ranked: bool = True, **attrs) -> onnx.ModelProto:
    return op_model("EdgeGraphAttention", dtypes, ranked, **attrs)


def gaussian_diff_graph_attention_model(
    dtypes: dict[str, int] | None = None, ranked: bool = True, **attrs
) -> onnx.ModelProto:
    return op_model("GaussianDiffGraphAttention", dtypes, ranked, **attrs)


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


SEED = fresh_seed()  # the run's seed: every random case derives from it (case_rng), a failure prints it


@contextlib.contextmanager
def replay_hint(context: str, seed: int = SEED) -> Iterator[None]:
    """Any failure inside says how to replay it: FINSTA_TEST_SEED=<seed> and ``context`` (the case)."""
    try:
        yield
    except Exception as e:
        hint = f"replay: FINSTA_TEST_SEED={seed} ({context})"
        if hasattr(e, "add_note"):  # Python >= 3.11; pytest prints the note under the error
            e.add_note(hint)
            raise
        raise AssertionError(f"{e}\n{hint}") from e


def case_rng(seed: int, case: dict) -> np.random.Generator:
    """The inputs of one case: a function of the run's seed and the case only (crc32, not hash(),
    which Python salts per process, so a printed seed replays the same inputs)."""
    return np.random.default_rng([seed, zlib.crc32(repr(sorted(case.items())).encode())])


FORMS = ("cpu_kernel", "cuda_library_cpu_kernel", "portable", "torch")  # the forms an op test can run


def selected_forms(forms: list[str]) -> list[str]:
    """``forms``, or only those named in FINSTA_TEST_FORMS (tests/test_sanitizers.py runs the kernel alone).

    A name that is no form is an error (a typo would otherwise select nothing and pass); a test none of
    whose forms is selected is skipped, with the reason, rather than passing having run nothing."""
    only = os.environ.get("FINSTA_TEST_FORMS")
    if not only:
        return list(forms)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in FORMS]
    if unknown or not names:
        raise ValueError(
            f"FINSTA_TEST_FORMS={only!r}: {unknown or 'no name'} is no form; the forms are {', '.join(FORMS)}"
        )
    chosen = [f for f in forms if f in names]
    if not chosen:
        pytest.skip(f"FINSTA_TEST_FORMS={only!r} selects none of this test's forms {list(forms)}")
    return chosen


def form_errors(
    form: str, outs: list[np.ndarray], refs: list[np.ndarray], names: tuple[str, ...] | None = None
) -> dict[str, float]:
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
    assert errs, f"{context}: no form ran, nothing was compared"
    bad = {f: e for f, e in errs.items() if not e <= tol}
    assert not bad, f"{context}: relative errors {errs}"


def large_clamp_feeds(N: int = 4, d: int = 4) -> dict[str, np.ndarray]:
    """EdgeGraphAttention inputs where exp of the clipped logit (4.5 * 3 * 6 * 4 / 2 = 162) overflows float32
    for clamp >= 88: every weight is equal, so h must be v = 1 exactly (issue 14's case)."""
    return dict(
        q=np.full((1, 1, N, d), 4.5, np.float32),
        k=np.full((1, 1, N, d), 3.0, np.float32),
        v=np.ones((1, 1, N, d), np.float32),
        e=np.full((1, 1, N, N, d), 6.0, np.float32),
        adj=np.ones((1, N, N), bool),
    )
