"""Export to ONNX: custom-node models (flavour ``custom``) and their ``portable`` counterparts."""

from .portable import attach_portable_functions, portable_function

__all__ = ["attach_portable_functions", "portable_function"]
