"""Export to ONNX: custom-node models (flavour ``custom``) and their ``portable`` counterparts.

The public API: :func:`export_onnx` (any module built on our ops, verified on fresh shapes),
:func:`export_bundle` (video and text towers with a tokenizer, as a bundle that finsta_rt serves by the
inputs and outputs it declares) and :func:`attach_portable_functions`."""

from .api import ExportError, OutputParity, ParityReport, export_onnx
from .bundle import ExportSpec, GraphExport, export_bundle, verify_bundle
from .flat import flatten_bundle, flatten_model
from .portable import attach_portable_functions, portable_function
from .precision import PRECISIONS, PrecisionError, convert_bundle

__all__ = [
    "ExportError",
    "ExportSpec",
    "GraphExport",
    "OutputParity",
    "ParityReport",
    "PRECISIONS",
    "PrecisionError",
    "attach_portable_functions",
    "convert_bundle",
    "export_bundle",
    "export_onnx",
    "flatten_bundle",
    "flatten_model",
    "portable_function",
    "verify_bundle",
]
