"""Export to ONNX: custom-node models (flavour ``custom``) and their ``portable`` counterparts.

The public API: :func:`export_onnx` (any module built on our ops, verified on fresh shapes),
:func:`export_bundle` (video and text towers with a tokenizer, as a bundle that finsta_rt serves by the
inputs and outputs it declares) and :func:`attach_portable_functions`."""

from .api import ExportError, OutputParity, ParityReport, export_onnx
from .bundle import ExportSpec, GraphExport, export_bundle, verify_bundle
from .portable import attach_portable_functions, portable_function

__all__ = [
    "ExportError",
    "ExportSpec",
    "GraphExport",
    "OutputParity",
    "ParityReport",
    "attach_portable_functions",
    "export_bundle",
    "export_onnx",
    "portable_function",
    "verify_bundle",
]
