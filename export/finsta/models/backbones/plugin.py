"""Backbone names a config may give (docs/extending.md, "Add a backbone"), one resolver for all of them:

* a built-in name of ``FRAME_BACKBONES`` / ``TEXT_BACKBONES``;
* ``module:callable``: a callable taking no argument that returns a module following the backbone protocol
  (``backbones/base.py``), e.g. ``my_models.vit:build``; its outputs are checked on an example before use;
* ``hf-clip:DIR``: the vision or text side of a transformers CLIP ``save_pretrained`` directory (:mod:`.hf_clip`);
* ``onnx:PATH[?declarations]`` (frames only): an existing ONNX image encoder (:mod:`.onnx_encoder`).

:func:`check_name` validates a name without importing torch or the plug-in (config validation);
:func:`build_backbone` builds and checks it; :func:`cache_identity` is what feature caches key on
(a plug-in's files by content, so replacing the weights invalidates the cache).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
from pathlib import Path
from typing import Any

SIDES = ("frame", "text")
PREFIXES = {"frame": ("hf-clip:", "onnx:"), "text": ("hf-clip:",)}
_CALLABLE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


class BackboneError(ValueError):
    """A backbone name that cannot be resolved, or a plug-in that breaks the backbone protocol."""


def _table(side: str) -> dict:
    from . import FRAME_BACKBONES, TEXT_BACKBONES

    return FRAME_BACKBONES if side == "frame" else TEXT_BACKBONES


def describe(side: str) -> str:
    """What a ``{side}_backbone`` may be, for error messages."""
    forms = ", ".join(f"'{p}...'" for p in PREFIXES[side])
    return f"one of {tuple(_table(side))}, 'module:callable' or {forms}"


def check_name(side: str, name: Any) -> str | None:
    """Why ``name`` is no valid ``{side}_backbone`` (None when it is); imports neither torch nor the plug-in."""
    if not isinstance(name, str) or not name:
        return f"must be {describe(side)}, got {name!r}"
    if name in _table(side):
        return None
    if name.startswith("onnx:") and side == "text":
        return "onnx:PATH is for frame_backbone only (a text encoder needs its tokenizer: use hf-clip:DIR)"
    for prefix in PREFIXES[side]:
        if name.startswith(prefix):
            target = Path(name[len(prefix) :].partition("?")[0]).expanduser()
            if prefix == "hf-clip:" and not (target / "config.json").is_file():
                return f"{name!r}: {target / 'config.json'} not found (a CLIP save_pretrained directory)"
            if prefix == "onnx:" and not target.is_file():
                return f"{name!r}: ONNX encoder {target} not found"
            return None
    if ":" in name:
        if not _CALLABLE.fullmatch(name):
            return f"{name!r} is not 'module:callable' (a dotted module, ':', a dotted attribute)"
        module = name.partition(":")[0]
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError) as e:
            found, why = None, f" ({e})"
        else:
            why = ""
        if found is None:
            return f"{name!r}: module {module!r} cannot be found{why}"
        return None
    return f"must be {describe(side)}, got {name!r}"


def _from_callable(name: str) -> Any:
    module, _, attr = name.partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as e:
        raise BackboneError(f"backbone {name!r}: cannot import module {module!r}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BackboneError(f"backbone {name!r}: module {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise BackboneError(f"backbone {name!r}: {attr!r} is not callable")
    return obj()


def build_backbone(side: str, name: str) -> Any:
    """The ``{side}`` backbone ``name`` names, frozen in eval mode, its protocol checked on an example."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    why = check_name(side, name)
    if why:
        raise BackboneError(f"{side}_backbone {why}")
    if name in _table(side):
        model = _table(side)[name]()
    elif name.startswith("hf-clip:"):
        from .hf_clip import clip_frame_backbone, clip_text_backbone

        path = str(Path(name[len("hf-clip:") :]).expanduser())
        model = clip_frame_backbone(path) if side == "frame" else clip_text_backbone(path)
    elif name.startswith("onnx:"):
        from .onnx_encoder import onnx_frame_backbone

        model = onnx_frame_backbone(str(Path(name[len("onnx:") :]).expanduser()))
    else:
        model = _from_callable(name)
    (check_frame_backbone if side == "frame" else check_text_backbone)(model, f"{side}_backbone {name!r}")
    return model.eval().requires_grad_(False)


def _need_attrs(model: Any, where: str, attrs: dict[str, type | tuple[type, ...]]) -> None:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise BackboneError(f"{where}: returned {type(model).__name__}, not a torch.nn.Module")
    for a, kind in attrs.items():
        if not isinstance(getattr(model, a, None), kind):
            got = type(getattr(model, a)).__name__ if hasattr(model, a) else "missing"
            raise BackboneError(f"{where}: attribute {a!r} must be {kind}, got {got} (docs/extending.md)")


def _pair(out: Any, where: str) -> tuple[Any, Any]:
    import torch

    if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
        raise BackboneError(f"{where}: forward must return a pair of tensors, got {type(out).__name__}")
    return out[0], out[1]


def check_frame_backbone(model: Any, where: str = "frame backbone") -> None:
    """Refuses a frame backbone that breaks the protocol: forward(pixels [N, 3, S, S]) -> (patch tokens [N, P, C],
    cls [N, C]) with P = tokens_per_frame = grid[0] * grid[1], C = out_dim, S = preprocess.size."""
    import torch

    from .base import FramePreprocess

    _need_attrs(model, where, {"out_dim": int, "tokens_per_frame": int, "grid": tuple, "preprocess": FramePreprocess})
    P, C, grid, S = model.tokens_per_frame, model.out_dim, model.grid, model.preprocess.size
    if len(grid) != 2 or grid[0] * grid[1] != P:
        raise BackboneError(f"{where}: grid {grid} does not hold tokens_per_frame {P} tokens")
    with torch.no_grad():
        tokens, cls = _pair(model.eval()(torch.randn(2, 3, S, S, generator=torch.Generator().manual_seed(0))), where)
    if tuple(tokens.shape) != (2, P, C) or tuple(cls.shape) != (2, C):
        raise BackboneError(
            f"{where}: forward(pixels [2, 3, {S}, {S}]) must return (tokens [2, {P}, {C}], cls [2, {C}]) "
            f"(tokens_per_frame, out_dim), got ({list(tokens.shape)}, {list(cls.shape)})"
        )


def check_text_backbone(model: Any, where: str = "text backbone") -> None:
    """Refuses a text backbone that breaks the protocol: forward(input_ids, attention_mask [B, S]) ->
    (token features [B, S, C], pooled [B, C]) with C = out_dim, ``config`` a TextConfig."""
    import torch

    from .base import TextConfig

    _need_attrs(model, where, {"out_dim": int, "config": TextConfig})
    try:
        ids, mask = model.config.tokenizer()(["a cat sits on a mat", "a dog"])
    except Exception as e:  # the tokenizer's own errors name its files
        raise BackboneError(f"{where}: its tokenizer cannot be built: {e}") from e
    with torch.no_grad():
        feats, pooled = _pair(model.eval()(torch.from_numpy(ids), torch.from_numpy(mask)), where)
    B, S, C = *ids.shape, model.out_dim
    if tuple(feats.shape) != (B, S, C) or tuple(pooled.shape) != (B, C):
        raise BackboneError(
            f"{where}: forward(input_ids [{B}, {S}], attention_mask) must return (features [{B}, {S}, {C}], pooled "
            f"[{B}, {C}]) (out_dim {C}), got ({list(feats.shape)}, {list(pooled.shape)})"
        )


def cache_identity(name: str) -> str:
    """``name``, and for a plug-in that reads files, a digest of their content (feature caches key on it)."""
    for prefix in ("hf-clip:", "onnx:"):
        if name.startswith(prefix):
            target = Path(name[len(prefix) :].partition("?")[0]).expanduser()
            files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
            h = hashlib.sha256()
            for p in files:
                h.update(p.name.encode())
                h.update(hashlib.sha256(p.read_bytes()).digest())
            return f"{name}#{h.hexdigest()[:16]}"
    return name
