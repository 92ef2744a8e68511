"""The one declaration each finsta op makes (docs/ops.md): its name, its portable ONNX function and its
attribute checks.

The portable function is an ``@onnxscript.script`` function in opset-18 ops, in the ``finsta`` opset; its
signature is the op's signature: tensor parameters are the node's inputs, ``int``/``float`` parameters its
attributes (a default makes one optional). Everything else derives from it: the exported node's attributes
(:meth:`OpDeclaration.export_node`), the model-local ONNX function that stock ONNX Runtime runs
(:meth:`OpDeclaration.function_proto`) and the checks of an eager call's or a node's attributes
(:meth:`OpDeclaration.check_attributes`, :meth:`OpDeclaration.check_node`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import onnxscript
from onnx import AttributeProto, FunctionProto, NodeProto, helper
from onnxscript import ir

from finsta_rt.ops import OPS_DOMAIN, OPS_VERSION

FINSTA_OPSET = onnxscript.values.Opset(OPS_DOMAIN, OPS_VERSION)  # the opset the portable functions belong to
PORTABLE_OPSET = 18  # the standard opset the portable functions are written in

Check = Callable[[Any], "str | None"]  # an attribute's value -> what is wrong with it, or None


def positive(value: float) -> str | None:
    return None if value > 0 else "must be > 0"


def non_negative(value: float) -> str | None:
    return None if value >= 0 else "must be >= 0"


def finite_positive(value: float) -> str | None:
    return None if math.isfinite(value) and value > 0 else "must be finite and > 0"


def not_nan(value: float) -> str | None:
    return "must not be NaN" if math.isnan(value) else None


_KINDS = {ir.AttributeType.INT: int, ir.AttributeType.FLOAT: float}  # the attribute types a finsta op may take
_ONNX_TYPES = {int: AttributeProto.INT, float: AttributeProto.FLOAT}
# how errors name an ONNX attribute type (the kernels' words: "must be a float, got an int")
_TYPE_WORDS = {
    AttributeProto.INT: "an int",
    AttributeProto.FLOAT: "a float",
    AttributeProto.STRING: "a string",
    AttributeProto.INTS: "a list of ints",
    AttributeProto.FLOATS: "a list of floats",
    AttributeProto.STRINGS: "a list of strings",
    AttributeProto.TENSOR: "a tensor",
}


def _type_words(attr_type: int) -> str:
    return _TYPE_WORDS.get(attr_type, f"of type {AttributeProto.AttributeType.Name(attr_type)}")


@dataclass(frozen=True)
class Attribute:
    """One attribute of an op, as its portable function's signature declares it."""

    name: str
    kind: type  # int or float
    default: int | float | None  # None: required
    check: Check | None = None

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (type, then the op's check), or None."""
        ok = (
            (isinstance(value, Integral) and not isinstance(value, bool))
            if self.kind is int
            else (isinstance(value, Real) and not isinstance(value, bool))
        )
        if not ok:
            return f"must be {'an int' if self.kind is int else 'a float'}"
        return self.check(value) if self.check else None


@dataclass(frozen=True)
class OpDeclaration:
    """A finsta op: ``name`` (the node's op_type in domain ``finsta``), ``portable`` (its onnxscript function)
    and ``checks`` (attribute name -> check), which must name attributes of ``portable``."""

    name: str
    portable: onnxscript.OnnxFunction
    checks: Mapping[str, Check] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.portable.opset.domain != OPS_DOMAIN:
            raise ValueError(
                f"{self.name}: portable function must be in opset {OPS_DOMAIN!r}, got {self.portable.opset.domain!r}"
            )
        unknown = set(self.checks) - {a.name for a in self.attributes}
        if unknown:
            raise ValueError(f"{self.name}: checks for attributes the portable function lacks: {sorted(unknown)}")

    @property
    def attributes(self) -> tuple[Attribute, ...]:
        out = []
        for p in self.portable.op_signature.params:
            if isinstance(p, ir.schemas.AttributeParameter):
                default = None if p.required else p.default.value
                out.append(Attribute(p.name, _KINDS[p.type], default, self.checks.get(p.name)))
        return tuple(out)

    def check_attributes(self, attrs: Mapping[str, Any], where: str | None = None) -> None:
        """Raises ValueError, starting with ``where`` (default: the op's name), for an unknown, missing,
        mistyped or out-of-range attribute."""
        where = where or self.name
        declared = {a.name: a for a in self.attributes}
        unknown = sorted(set(attrs) - set(declared))
        if unknown:
            if not declared:
                raise ValueError(f"{where}: takes no attributes, got {unknown}")
            raise ValueError(f"{where}: unknown attribute(s) {unknown}; known: {sorted(declared)}")
        for a in declared.values():
            if a.name not in attrs:
                if a.default is None:
                    raise ValueError(f"{where}: required attribute '{a.name}' is missing")
                continue
            problem = a.problem(attrs[a.name])
            if problem:
                raise ValueError(f"{where}: {a.name} {problem}, got {attrs[a.name]!r}")

    def check_node(self, node: NodeProto) -> None:
        """:meth:`check_attributes` for a ``finsta`` node; an attribute of the wrong ONNX type is refused too."""
        where = f"{self.name} node {node.name or node.output[0]!r}"
        types = {a.name: _ONNX_TYPES[a.kind] for a in self.attributes}
        for a in node.attribute:
            if a.name in types and a.type != types[a.name]:
                raise ValueError(
                    f"{where}: attribute '{a.name}' must be {_type_words(types[a.name])}, got {_type_words(a.type)}"
                )
        self.check_attributes({a.name: helper.get_attribute_value(a) for a in node.attribute}, where)

    def function_proto(self, opset: int = PORTABLE_OPSET) -> FunctionProto:
        """The model-local ONNX function (domain ``finsta``, name = op_type) that stock ONNX Runtime inlines.

        ``opset``: the model's standard opset, which the function's import must match (the body is written
        in opset-18 ops that later opsets keep)."""
        fn = self.portable.to_function_proto()
        fn.name = self.name
        for imp in fn.opset_import:
            if imp.domain in ("", "ai.onnx"):
                imp.version = opset
        fn.doc_string = f"finsta {self.name}, portable decomposition (docs/ops.md)"
        return fn

    def export_node(
        self, inputs: Sequence[Any], attrs: Mapping[str, Any], dtypes: Sequence[Any], shapes: Sequence[Any]
    ) -> Any:
        """The op as one ``finsta`` node under ``torch.onnx.export``: one output tensor, or a tuple of them."""
        import torch  # finsta.nn is the PyTorch side; the declaration itself needs torch only here

        self.check_attributes(attrs)
        kinds = {a.name: a.kind for a in self.attributes}
        attrs = {k: kinds[k](v) for k, v in attrs.items()}
        target = f"{OPS_DOMAIN}::{self.name}"
        if len(dtypes) == 1:
            return torch.onnx.ops.symbolic(
                target, tuple(inputs), attrs=attrs, dtype=dtypes[0], shape=shapes[0], version=OPS_VERSION
            )
        return torch.onnx.ops.symbolic_multi_out(
            target, tuple(inputs), attrs=attrs, dtypes=tuple(dtypes), shapes=tuple(shapes), version=OPS_VERSION
        )
