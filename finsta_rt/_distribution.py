"""The install check run by ``import finsta_rt``: exactly one ONNX Runtime distribution.

``onnxruntime``, ``onnxruntime-gpu`` and the other builds all install the same module, ``onnxruntime``. pip
treats them as unrelated projects, so ``pip install 'finsta-rt[gpu]'`` puts onnxruntime-gpu beside the
required onnxruntime: the files of whichever was installed last overwrite the other's, and uninstalling one
deletes files the other needs. Which runtime (and which execution providers) Python then imports is luck,
so the package refuses to import and says how to keep one (docs/environment.md, "CUDA: onnxruntime-gpu").

Only distribution metadata is read (``importlib.metadata``): no onnxruntime import, a few milliseconds.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence

# The PyPI distributions that install the module ``onnxruntime`` (dist-info names are matched normalised).
ONNXRUNTIME_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
    "onnxruntime-rocm",
    "onnxruntime-migraphx",
    "onnxruntime-training",
    "ort-nightly",
    "ort-nightly-gpu",
)


class BrokenInstallError(ImportError):
    """The environment finsta_rt is imported in is broken in a way it cannot work around; the message says how."""


def onnxruntime_distributions(path: Sequence[str] | None = None) -> dict[str, str]:
    """Installed ONNX Runtime distributions, name -> version, on ``path`` (default ``sys.path``)."""
    found: dict[str, str] = {}
    for name in ONNXRUNTIME_DISTRIBUTIONS:
        kwargs = {"name": name} if path is None else {"name": name, "path": list(path)}
        for dist in importlib.metadata.distributions(**kwargs):
            found.setdefault(name, dist.version)  # the first on the path is the one Python would see
    return found


def check_onnxruntime(path: Sequence[str] | None = None) -> None:
    """Raises :class:`BrokenInstallError` when more than one ONNX Runtime distribution is installed."""
    found = onnxruntime_distributions(path)
    if len(found) < 2:
        return
    listed = ", ".join(f"{name} {version}" for name, version in found.items())
    names = " ".join(found)
    gpu = found.get("onnxruntime-gpu")
    keep_gpu = f"pip install 'onnxruntime-gpu=={gpu}'" if gpu else "pip install 'onnxruntime-gpu>=1.31'"
    raise BrokenInstallError(
        f"finsta-rt: {len(found)} ONNX Runtime distributions are installed ({listed}); they all install the "
        "module onnxruntime, so which one Python imports is luck (their files overwrite each other's). Keep one: "
        f"`pip uninstall -y {names}`, then `{keep_gpu}` for CUDA, or `pip install onnxruntime` for the CPU "
        "(docs/environment.md, 'CUDA: onnxruntime-gpu')."
    )
