"""The attribute names of a model's finsta nodes, checked before a session is created (docs/ops.md).

ONNX Runtime's custom-op API (up to onnxruntime 1.31) reads a node's attributes by name only, so a
kernel cannot see a misspelt or extra attribute (``frame_radiuss=2`` would leave ``frame_radius`` at
its default in silence). The op library checks the model file instead: its ``FinstaCheckModel``
walks the file's protobuf and refuses any attribute of a finsta node that the op does not read,
naming the op, the node and the attribute and listing the known ones (custom_ops/common/
model_check.h; the op table there is the one list of names). :class:`finsta_rt.Model` calls it for
every graph that needs the op library; an app that builds its own sessions can call
:func:`check_model` too.

>>> from finsta_rt import op_check, ops
>>> op_check.check_model("video.onnx", ops.library_path("cpu"))   # raises ModelCheckError
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

from .ops import BUILD_HINT, OpsLibraryError


class ModelCheckError(ValueError):
    """A model's finsta node carries an attribute its op does not read (or the file is unreadable)."""


@functools.cache
def _checker(library: Path):
    try:
        fn = ctypes.CDLL(str(library)).FinstaCheckModel
    except OSError as e:
        raise OpsLibraryError(f"cannot load the finsta op library {library}: {e}. {BUILD_HINT}") from e
    except AttributeError as e:
        raise OpsLibraryError(
            f"stale finsta op library {library}: it has no FinstaCheckModel (an older build). {BUILD_HINT}"
        ) from e
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    fn.restype = ctypes.c_char_p
    return fn


def check_model(model: str | Path | bytes, library: str | Path) -> None:
    """Raises :class:`ModelCheckError` if a finsta node of ``model`` (a path or the serialized
    ModelProto) carries an attribute its op does not read; ``library`` is the op library the
    session registers (:func:`finsta_rt.ops.library_path`)."""
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    error = _checker(Path(library).resolve())(data, len(data))
    if error is not None:
        where = "" if isinstance(model, bytes) else f"{model}: "
        raise ModelCheckError(where + error.decode("utf-8", "backslashreplace"))
