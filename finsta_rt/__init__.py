"""finsta-rt: the lean runtime for structural video-language model bundles.

Depends on numpy, onnxruntime, av and pyyaml only; never on torch.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

from .ops import OPS_DOMAIN, OPS_VERSION, OpsLibraryError, library_path, register  # noqa: E402

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__", "OPS_DOMAIN", "OPS_VERSION", "OpsLibraryError", "library_path", "register"]
