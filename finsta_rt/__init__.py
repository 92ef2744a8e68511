"""finsta-rt: the lean runtime for structural video-language model bundles.

Depends on numpy, onnxruntime, av and pyyaml only; never on torch. What users call is exported
here and imported on first use, so ``import finsta_rt`` stays light (no numpy, onnxruntime or av):

>>> import finsta_rt
>>> m = finsta_rt.Model("bundles/stgt")
>>> clip = finsta_rt.read_frames("clip.mp4", "uniform:8", transform=m.bundle.preprocess)
>>> finsta_rt.extract(m, ["a.mp4", "b.mp4"], "features/")      # the extraction entry point
>>> finsta_rt.FeatureIndex("features/").search_text(m.embed_text(["a dog"])[0], k=5)
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from ._distribution import check_onnxruntime as _check_onnxruntime

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
# Two ONNX Runtime distributions (onnxruntime beside onnxruntime-gpu) make the imported runtime a matter of luck.
_check_onnxruntime()

# public name -> the module defining it
_EXPORTS = {
    "Model": "model",
    "resolve_device": "model",
    "Bundle": "bundle",
    "BundleError": "bundle",
    "Preprocess": "preprocess",
    "read_frames": "video",
    "iter_frames": "video",
    "probe": "video",
    "Sampling": "video",
    "Clip": "video",
    "VideoError": "video",
    "VideoTimeout": "video",
    "ExtractError": "extract",
    "Summary": "extract",
    "FeatureIndex": "search",
    "Hit": "search",
    "SearchError": "search",
    "FeatureStore": "feature_store",
    "FeatureStoreError": "feature_store",
    "AnnIndex": "index",
    "build_index": "index",
    "load_user_graph": "user_graph",
    "parse_user_graph": "user_graph",
    "UserGraphError": "user_graph",
    "register": "ops",
    "library_path": "ops",
    "OpsLibraryError": "ops",
    "OPS_DOMAIN": "ops",
    "OPS_VERSION": "ops",
}
# ``finsta_rt.extract`` is the submodule and, being callable, the extraction entry point too:
# ``finsta_rt.extract(model, paths, out_dir)`` calls ``finsta_rt.extract.extract`` (one object whatever
# was imported first, where a function of the same name would be replaced by the submodule).
_MODULES = ("extract",)

__all__ = ["__version__", *_MODULES, *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
