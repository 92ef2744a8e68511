"""Locating, checking and registering the finsta custom-op library with ONNX Runtime.

Two builds exist (docs/architecture.md, docs/environment.md): ``libfinsta_ops.so`` holds the CPU
kernels and has no CUDA dependency; ``libfinsta_ops_cuda.so`` holds the same CPU kernels plus the
CUDA kernels. Both register domain ``finsta`` version 1 (the library says which domain, version and
ops it registers, from its op table; a library that disagrees with this module is refused). They
are looked up in ``finsta_rt/_lib`` (where ``make ops`` installs them), or in the folder named by
``FINSTA_OPS_DIR``.

>>> import onnxruntime as ort, finsta_rt
>>> so = ort.SessionOptions()
>>> finsta_rt.register(so)            # CPU kernels
>>> finsta_rt.register(so, "cuda")    # CPU + CUDA kernels, for the CUDA execution provider
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OPS_DOMAIN = "finsta"
OPS_VERSION = 1
ENV_DIR = "FINSTA_OPS_DIR"
_LIB_NAMES = {"cpu": "libfinsta_ops.so", "cuda": "libfinsta_ops_cuda.so"}
_PACKAGE_DIR = Path(__file__).resolve().parent
_SOURCE_DIR = _PACKAGE_DIR.parent / "custom_ops"  # present in a source checkout only

BUILD_HINT = (
    "Build it with `make ops` in a finsta-rt checkout, or (re)install finsta-rt with `pip install .` / "
    "`pip install -e .`, which builds it (needs cmake, a C++17 compiler and, for the CUDA library, nvcc; "
    f"docs/environment.md), or set {ENV_DIR} to a folder that holds it."
)


class OpsLibraryError(RuntimeError):
    """The op library is missing, stale or cannot be loaded."""


def _normalize_device(device: str) -> str:
    kind = device.split(":", 1)[0].lower()
    if kind not in _LIB_NAMES:
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    return kind


def library_dir() -> Path:
    """The folder searched for the op libraries."""
    env = os.environ.get(ENV_DIR)
    return Path(env).expanduser() if env else _PACKAGE_DIR / "_lib"


def library_path(device: str = "cpu") -> Path:
    """Path of the op library that :func:`register` would load for ``device`` ('cpu' or 'cuda[:N]').

    Raises :class:`OpsLibraryError`, saying how to build it, if it is missing or stale.
    """
    kind = _normalize_device(device)
    path = library_dir() / _LIB_NAMES[kind]
    if not path.is_file():
        extra = ""
        if kind == "cuda" and (library_dir() / _LIB_NAMES["cpu"]).is_file():
            extra = " (the CPU library exists: the CUDA one is built only where nvcc is found)"
        raise OpsLibraryError(f"finsta op library for {kind} not found at {path}{extra}. {BUILD_HINT}")
    _check_library(path, path.stat().st_mtime_ns)
    return path


@functools.cache
def library_info(path: Path, _mtime_ns: int = 0) -> dict[str, str]:
    """The build facts a library reports about itself (version, cuda, domain, opset, ops)."""
    try:
        lib = ctypes.CDLL(str(path))
        fn = lib.FinstaOpsInfo
    except (OSError, AttributeError) as e:
        raise OpsLibraryError(f"cannot load the finsta op library {path}: {e}. {BUILD_HINT}") from e
    fn.restype = ctypes.c_char_p
    words = fn().decode().split()
    info = {"name": words[0], "version": words[1]}
    info.update(w.split("=", 1) for w in words[2:] if "=" in w)
    return info


def _check_library(path: Path, mtime_ns: int) -> None:
    from . import __version__

    info = library_info(path, mtime_ns)
    if info["version"] != __version__:
        raise OpsLibraryError(
            f"stale finsta op library {path}: built for finsta-rt {info['version']}, "
            f"this is finsta-rt {__version__}. {BUILD_HINT}"
        )
    if "domain" not in info:
        raise OpsLibraryError(
            f"stale finsta op library {path}: it does not report its domain and op set (an older build). {BUILD_HINT}"
        )
    if (info.get("domain"), info.get("opset")) != (OPS_DOMAIN, str(OPS_VERSION)):
        raise OpsLibraryError(
            f"finsta op library {path} registers domain {info.get('domain')!r} version {info.get('opset')!r}, "
            f"finsta-rt expects {OPS_DOMAIN!r} version {OPS_VERSION}. {BUILD_HINT}"
        )
    if _SOURCE_DIR.is_dir():
        newest = max((p.stat().st_mtime_ns for p in _SOURCE_DIR.rglob("*") if p.is_file()), default=0)
        if newest > mtime_ns:
            log.warning(
                "finsta op library %s is older than its sources in %s; rebuild with `make ops`", path, _SOURCE_DIR
            )


def register(session_options: Any, device: str = "cpu") -> Path:
    """Registers the op library for ``device`` with an ``onnxruntime.SessionOptions``; returns its path."""
    path = library_path(device)
    session_options.register_custom_ops_library(str(path))
    log.debug("registered %s", path)
    return path
