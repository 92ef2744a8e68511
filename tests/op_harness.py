"""The one parametrised harness of the finsta op tests, shared by the three ops.

Each op's test file declares its cases in tables, an :class:`OpCases` (kernel, portable function and
eager op against the float64 reference; bad inputs and attributes) in ``test_<op>.py`` and an
:class:`ExportCases` (PyTorch -> ONNX, eager checks, gradients) in ``test_export_<op>.py``, and takes
its tests from :func:`op_tests` / :func:`export_tests`::

    globals().update(op_tests(CASES))

Every random case draws fresh inputs from the run's seed (helpers.SEED); a failure prints
FINSTA_TEST_SEED=<seed> and the case, which replay it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import pytest
from helpers import (
    IR_VERSION,
    SEED,
    assert_errors_within,
    case_rng,
    form_errors,
    max_rel_err,
    op_model,
    replay_hint,
    selected_forms,
    session,
)
from onnx import helper

import finsta_rt
from finsta.export import attach_portable_functions

Feeds = dict[str, np.ndarray]
Attrs = dict[str, Any]


@dataclass(frozen=True)
class OpCases:
    """One op's table for :func:`op_tests`.

    ``inputs(rng, case)`` -> (feeds, node attributes) for one case (a dict of sizes and knobs);
    ``reference(feeds, attrs)`` -> the float64 outputs; ``torch_op(feeds, attrs)`` -> the eager outputs.
    ``bad_inputs``: name -> (feeds, error fragment), run with ``good_attrs`` on a model typed like the feeds
    and of open rank; ``bad_attributes``: (attrs, kernel error fragment), run on ``good_feeds``;
    ``portable_bad_attributes``: (attrs, attach_portable_functions' error fragment);
    ``kernel_rejects``: (feeds, attrs, error fragment) of an input the kernel refuses and the portable
    body silently computes; ``empty_cases``: name -> case with an empty dimension, whose outputs must have
    ``output_shapes(feeds)``.
    Fragments are regular expressions that follow "<op>: " (kernel) or stand alone (portable).
    """

    op: str
    inputs: Callable[[np.random.Generator, dict], tuple[Feeds, Attrs]]
    reference: Callable[[Feeds, Attrs], list[np.ndarray]]
    torch_op: Callable[[Feeds, Attrs], list[np.ndarray]]
    random_cases: Callable[[int, int], list[dict]]
    edge_cases: Mapping[str, dict]
    good_feeds: Callable[[], Feeds]
    good_attrs: Attrs
    bad_inputs: Mapping[str, tuple[Feeds, str]]
    bad_attributes: Sequence[tuple[Attrs, str]]
    portable_bad_attributes: Sequence[tuple[Attrs, str]]
    kernel_rejects: Callable[[], tuple[Feeds, Attrs, str]]
    empty_cases: Mapping[str, dict]
    output_shapes: Callable[[Feeds], list[tuple]]
    outputs: tuple[str, ...] = ("out",)
    tol: float = 1e-5
    n_random: int = 52
    n_cuda_library: int = 8

    def model(self, attrs: Attrs, feeds: Feeds | None = None, ranked: bool = True) -> onnx.ModelProto:
        """The one-node model with ``attrs``; typed like ``feeds`` when given."""
        dtypes = {n: helper.np_dtype_to_tensor_dtype(a.dtype) for n, a in feeds.items()} if feeds else None
        return op_model(self.op, dtypes, ranked, **attrs)

    def run_form(self, form: str, feeds: Feeds, attrs: Attrs) -> list[np.ndarray]:
        if form in ("cpu_kernel", "cuda_library_cpu_kernel"):
            return session(self.model(attrs), library="cuda" if form.startswith("cuda") else "cpu").run(None, feeds)
        if form == "portable":
            return session(attach_portable_functions(self.model(attrs)), library=None).run(None, feeds)
        if form == "torch":
            return self.torch_op(feeds, attrs)
        raise ValueError(f"unknown form {form!r}")

    def check_forms(self, case: dict, forms: list[str], tol: float | None = None) -> dict[str, float]:
        """Runs ``forms`` on the case's fresh inputs; asserts each within ``tol`` (default: the table's) of the
        float64 reference."""
        context = f"{self.op} case={case}"
        with replay_hint(context):
            feeds, attrs = self.inputs(case_rng(SEED, case), case)
            refs = self.reference(feeds, attrs)
            errs: dict[str, float] = {}
            for form in selected_forms(forms):
                outs = self.run_form(form, feeds, attrs)
                errs.update(form_errors(form, outs, refs, self.outputs if len(self.outputs) > 1 else None))
        assert_errors_within(errs, self.tol if tol is None else tol, f"FINSTA_TEST_SEED={SEED} {context} attrs={attrs}")
        return errs


def _params(named: Mapping[str, Any]) -> list:
    return [pytest.param(v, id=k) for k, v in named.items()]


def _random_params(cases: OpCases, n: int) -> list:
    return [pytest.param(c, id=f"random{i}") for i, c in enumerate(cases.random_cases(n, SEED))]


def op_tests(cases: OpCases) -> dict[str, Callable]:
    """The tests of one op's kernel, portable function and eager op, parametrised by its table."""

    @pytest.mark.parametrize("case", _random_params(cases, cases.n_random) + _params(cases.edge_cases))
    def test_matches_float64_reference(case):
        cases.check_forms(case, ["cpu_kernel", "portable", "torch"])

    @pytest.mark.parametrize("case", _random_params(cases, cases.n_cuda_library))
    def test_cuda_library_runs_its_cpu_kernel_without_a_gpu(case):
        # The CUDA build registers the CPU kernel too (a CUDA-only registration breaks CPU sessions).
        cases.check_forms(case, ["cuda_library_cpu_kernel"])

    @pytest.mark.parametrize("case", _params(cases.empty_cases))
    def test_empty_dimensions_give_empty_outputs(case):
        feeds, attrs = cases.inputs(np.random.default_rng(0), case)
        outs = session(cases.model(attrs)).run(None, feeds)
        assert [o.shape for o in outs] == cases.output_shapes(feeds)

    def test_kernel_is_used_when_library_registered_even_with_portable_function():
        # A portable model must run our kernel once the library is registered: the kernel names
        # itself in its errors, while the portable body silently computes.
        feeds, attrs, message = cases.kernel_rejects()
        model = attach_portable_functions(cases.model(attrs))
        with pytest.raises(Exception, match=f"{cases.op}: {message}"):
            session(model).run(None, feeds)
        session(model, library=None).run(None, feeds)  # stock ORT: the function body runs

    # ---- bad inputs: each must give an ORT error naming the op and the problem, never a crash ----

    @pytest.mark.parametrize("name", list(cases.bad_inputs))
    def test_bad_inputs_give_clear_errors(name):
        feeds, message = cases.bad_inputs[name]
        sess = session(cases.model(cases.good_attrs, feeds, ranked=False))
        with pytest.raises(Exception, match=f"{cases.op}: {message}"):
            sess.run(None, feeds)

    @pytest.mark.parametrize("attrs,message", cases.bad_attributes)
    def test_bad_attributes_give_clear_errors(attrs, message):
        with pytest.raises(Exception, match=f"{cases.op}: {message}"):
            session(cases.model(attrs)).run(None, cases.good_feeds())

    @pytest.mark.parametrize("attrs,message", cases.portable_bad_attributes)
    def test_attach_portable_rejects_bad_attributes(attrs, message):
        with pytest.raises(ValueError, match=f"{cases.op} node .*{message}"):
            attach_portable_functions(cases.model(attrs))

    tests = {
        f.__name__: f
        for f in (
            test_matches_float64_reference,
            test_cuda_library_runs_its_cpu_kernel_without_a_gpu,
            test_empty_dimensions_give_empty_outputs,
            test_kernel_is_used_when_library_registered_even_with_portable_function,
            test_bad_inputs_give_clear_errors,
            test_bad_attributes_give_clear_errors,
            test_attach_portable_rejects_bad_attributes,
        )
    }
    if not cases.bad_attributes:  # an op without attributes: nothing for the kernel to refuse
        del tests["test_bad_attributes_give_clear_errors"]
    return tests


@dataclass(frozen=True)
class ExportCases:
    """One op's table for :func:`export_tests`.

    ``block()``: a small module around the op; ``inputs(size, seed)``: its inputs for one size;
    ``export_size``: the size exported (with ``dynamic_shapes``) and ``sizes`` those compared, in both
    flavours, against PyTorch; ``node_inputs``, ``node_outputs``, ``node_attrs``: what the one finsta node
    must have (attribute values compared with pytest.approx); ``eager_errors``: name -> (call, error
    fragment) of bad eager calls; ``gradchecks``: name -> (function, float64 inputs) for gradcheck."""

    op: str
    block: Callable[[], Any]
    inputs: Callable[[tuple, int], tuple]
    dynamic_shapes: Callable[[], dict]
    export_size: tuple
    sizes: Sequence[tuple]
    node_inputs: int
    node_outputs: int
    node_attrs: Attrs
    eager_errors: Mapping[str, tuple[Callable[[], Any], str]]
    gradchecks: Mapping[str, Callable[[], tuple[Callable, tuple]]] = field(default_factory=dict)
    tol: float = 1e-5


def export_tests(cases: ExportCases) -> dict[str, Callable]:
    """The tests of one op's PyTorch -> ONNX export (one custom node; both flavours match PyTorch), its
    eager checks and its gradients, parametrised by its table."""
    import torch

    @pytest.fixture(scope="module")
    def exported():
        torch.manual_seed(0)
        model = cases.block().eval()
        proto = torch.onnx.export(
            model, cases.inputs(cases.export_size, 0), dynamo=True, dynamic_shapes=cases.dynamic_shapes(), verbose=False
        ).model_proto
        proto.ir_version = min(proto.ir_version, IR_VERSION)
        return model, proto

    def test_one_custom_node(exported):
        _, proto = exported
        custom = [n for n in proto.graph.node if n.domain == finsta_rt.OPS_DOMAIN]
        assert [n.op_type for n in custom] == [cases.op]
        assert len(custom[0].input) == cases.node_inputs and len(custom[0].output) == cases.node_outputs
        attrs = {a.name: helper.get_attribute_value(a) for a in custom[0].attribute}
        assert attrs == {k: pytest.approx(v) for k, v in cases.node_attrs.items()}
        assert not proto.functions  # the custom flavour carries no fallback

    @pytest.mark.parametrize("size", _params({"-".join(map(str, s)): s for s in cases.sizes}))
    @pytest.mark.parametrize("flavour", ["custom", "portable"])
    def test_flavours_match_pytorch(exported, flavour, size):
        model, proto = exported
        if flavour == "portable":
            proto = attach_portable_functions(onnx.ModelProto.FromString(proto.SerializeToString()))
            onnx.checker.check_model(proto, full_check=True)
        inputs = cases.inputs(size, 100 * size[0] + size[1])
        with torch.no_grad():
            out = model(*inputs)
        refs = [r.double().numpy() for r in (out if isinstance(out, tuple) else (out,))]
        sess = session(proto, library="cpu" if flavour == "custom" else None)
        outs = sess.run(None, {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)})
        errs = [max_rel_err(o, r) for o, r in zip(outs, refs, strict=True)]
        assert max(errs) <= cases.tol, f"{cases.op} {flavour} size={size}: relative errors {errs}"

    @pytest.mark.parametrize("name", list(cases.eager_errors))
    def test_eager_op_checks_inputs(name):
        call, message = cases.eager_errors[name]
        with pytest.raises(ValueError, match=message):
            call()

    @pytest.mark.parametrize("name", list(cases.gradchecks))
    def test_gradcheck_float64(name):
        fn, inputs = cases.gradchecks[name]()
        assert torch.autograd.gradcheck(fn, inputs)

    tests = {
        f.__name__: f
        for f in (
            test_one_custom_node,
            test_flavours_match_pytorch,
            test_eager_op_checks_inputs,
            test_gradcheck_float64,
        )
    }
    if not cases.gradchecks:
        del tests["test_gradcheck_float64"]
    return {"exported": exported, **tests}
