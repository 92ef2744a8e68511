"""The console scripts of the PyTorch side (``finsta-train``, ``finsta-export``; pyproject.toml).

A plain ``pip install finsta-rt`` installs these scripts without torch. A torch-side package missing when the
command imports it (at start, or when it gets to work) ends in one line that says what to install, not a traceback.
"""

from __future__ import annotations

import importlib
import sys

# The packages of the [export] extra that the commands import (the weight wheels say so themselves, on use).
TORCH_SIDE = ("torch", "onnx", "onnxscript", "safetensors")
INSTALL_HINT = (
    "install the PyTorch side: pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu "
    "(the CPU wheel first: an unpinned torch pulls GBs of CUDA packages), then pip install 'finsta-rt[export]'"
)


def _run(prog: str, module: str) -> int:
    # `--help` needs no torch; a command imports it when it gets to work, so the whole run is guarded.
    try:
        return importlib.import_module(module).main()
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in TORCH_SIDE:
            raise
        sys.stderr.write(f"{prog}: needs {top!r}, which is not installed; {INSTALL_HINT}\n")
        return 2


def train() -> int:
    """``finsta-train``."""
    return _run("finsta-train", "finsta.cli.train")


def export() -> int:
    """``finsta-export``."""
    return _run("finsta-export", "finsta.cli.export")
