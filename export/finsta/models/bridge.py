"""The ConSE bridge (docs/families.md, "The ConSE bridge"): a cross-modal score from two backbones that
were never aligned, an ImageNet frame classifier and a sentence text encoder.

ConSE (Norouzi et al., ICLR 2014, "Zero-shot learning by convex combination of semantic embeddings")
maps an image into a text space as the convex combination of the text embeddings of its top-``top``
ImageNet classes, weighted by their probabilities. Here: the frame tokens' token 0 (the mean-pooled
feature the backbone's ``_fc`` classifier reads) -> ImageNet-1k probabilities per frame, averaged over
the frames -> the top classes' weights renormalised -> that mixture of the text backbone's (frozen)
embeddings of the 1000 class names -> L2-normalised. A text's bridge embedding is its sentence
embedding (mask-mean-pool of the text backbone's token features, L2-normalised: sentence-transformers'
all-MiniLM-L6-v2 recipe). Everything is frozen buffers, so training on cached features cannot change it.

The class names are open-clip-torch's ``IMAGENET_CLASSNAMES`` (read as text from the installed
distribution; open_clip itself is never imported: it pulls in torchvision).
"""

from __future__ import annotations

import ast
import importlib.metadata
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from .backbones.base import masked_mean

log = logging.getLogger(__name__)

IMAGENET_CLASSES = 1000
CLASSNAMES_DIST = "open-clip-torch"
CLASSNAMES_FILE = "open_clip/zero_shot_metadata.py"
# The prompt the class names are embedded in ("{}" is the name). Measured on the held-out real clips
# (benchmarks/real_retrieval.py --bridge-only): see docs/families.md for the figures of each choice.
TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)


class BridgeError(ValueError):
    """The bridge cannot be built: a backbone without an ImageNet classifier, or no class names."""


def imagenet_classnames() -> list[str]:
    """The 1000 ImageNet-1k class names in the standard class order, from the installed open-clip-torch."""
    try:
        dist = importlib.metadata.distribution(CLASSNAMES_DIST)
    except importlib.metadata.PackageNotFoundError as e:
        raise BridgeError(
            f"the ConSE bridge reads the ImageNet class names from the PyPI package {CLASSNAMES_DIST!r} "
            f"({CLASSNAMES_FILE}), which is not installed; install it with: pip install --no-deps open-clip-torch"
        ) from e
    files = [f for f in dist.files or () if str(f).replace("\\", "/") == CLASSNAMES_FILE]
    if not files:
        raise BridgeError(f"{CLASSNAMES_DIST} {dist.version} has no {CLASSNAMES_FILE}")
    path = Path(dist.locate_file(files[0]))
    return classnames_from_source(path.read_text(encoding="utf-8"), str(path))


def classnames_from_source(source: str, where: str) -> list[str]:
    """``IMAGENET_CLASSNAMES`` of a zero_shot_metadata.py source, evaluated as a literal (nothing runs)."""
    for node in ast.parse(source, filename=where).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "IMAGENET_CLASSNAMES" for t in node.targets
        ):
            names = ast.literal_eval(node.value)
            if not (isinstance(names, (tuple, list)) and all(isinstance(n, str) and n for n in names)):
                raise BridgeError(f"{where}: IMAGENET_CLASSNAMES is not a sequence of non-empty strings")
            return list(names)
    raise BridgeError(f"{where}: no IMAGENET_CLASSNAMES assignment")


def sentence_embedding(features: Tensor, mask: Tensor) -> Tensor:
    """The text backbone's sentence embedding: masked mean of its token features, L2-normalised."""
    return nn.functional.normalize(masked_mean(features, mask), dim=-1)


@torch.no_grad()
def class_name_table(
    text_backbone: nn.Module, tokenizer, names: Sequence[str], templates: Sequence[str] = TEMPLATES
) -> Tensor:
    """[K, C_text] float32: per class, the mean over ``templates`` of the sentence embeddings of the
    filled-in template, L2-normalised (a single template: just its sentence embedding)."""
    if not templates or any("{}" not in t for t in templates):
        raise BridgeError(f"every bridge template needs a '{{}}' for the class name, got {list(templates)!r}")
    total = None
    for template in templates:
        ids, mask = tokenizer([template.format(n) for n in names], padding="longest")
        emb = []
        for i in range(0, len(names), 250):
            ids_i, mask_i = torch.from_numpy(ids[i : i + 250]), torch.from_numpy(mask[i : i + 250])
            features, _ = text_backbone(ids_i, mask_i)
            emb.append(sentence_embedding(features, mask_i))
        e = torch.cat(emb)
        total = e if total is None else total + e
    return nn.functional.normalize(total, dim=-1).float()


class ConSEBridge(nn.Module):
    """Frame tokens [B, T, 1 + P, C] -> bridge video embedding [B, C_text] (see the module docstring).

    ``fc_weight`` [K, C], ``fc_bias`` [K]: a frozen copy of the frame backbone's ImageNet classifier;
    ``classes`` [K, C_text]: the class-name table. All three are buffers (saved, never trained)."""

    def __init__(self, classes: int, frame_dim: int, text_dim: int, top: int):
        super().__init__()
        if not 1 <= top <= classes:
            raise BridgeError(f"bridge_top must be in 1..{classes}, got {top}")
        self.top = top
        self.register_buffer("fc_weight", torch.zeros(classes, frame_dim))
        self.register_buffer("fc_bias", torch.zeros(classes))
        self.register_buffer("classes", torch.zeros(classes, text_dim))

    def probabilities(self, tokens: Tensor) -> Tensor:
        """ImageNet probabilities of the clip [B, K]: the mean over frames of each frame's softmax."""
        logits = tokens[:, :, 0] @ self.fc_weight.T + self.fc_bias  # [B, T, K]
        return logits.softmax(dim=-1).mean(dim=1)

    def forward(self, tokens: Tensor) -> Tensor:
        p = self.probabilities(tokens)
        if self.top < p.shape[-1]:  # ConSE: only the top classes, their weights renormalised
            w, idx = p.topk(self.top, dim=-1)
            mix = torch.einsum("bk,bkc->bc", w / w.sum(dim=-1, keepdim=True), self.classes[idx])
        else:
            mix = p @ self.classes
        return nn.functional.normalize(mix, dim=-1)


def imagenet_classifier(frame_backbone: nn.Module, name: str = "frame backbone") -> nn.Linear:
    """The frame backbone's ImageNet-1k classifier (``_fc``, reading the mean-pooled token), or BridgeError."""
    fc = getattr(frame_backbone, "_fc", None)
    dim = getattr(frame_backbone, "out_dim", None)
    if not isinstance(fc, nn.Linear) or fc.in_features != dim or fc.out_features != IMAGENET_CLASSES:
        raise BridgeError(
            f"model.bridge needs a frame backbone with an ImageNet-1k classifier on its pooled token "
            f"(a 1000-way `_fc` of width out_dim, as efficientnet_lite0 has); {name} "
            f"({type(frame_backbone).__name__}) has none"
        )
    return fc


def build_bridge(
    frame_backbone: nn.Module,
    text_backbone: nn.Module,
    tokenizer,
    top: int,
    templates: Sequence[str] = TEMPLATES,
    frame_name: str = "frame backbone",
) -> ConSEBridge:
    """A bridge filled from the frozen backbones: a copy of the classifier and the class-name table."""
    fc = imagenet_classifier(frame_backbone, frame_name)
    names = imagenet_classnames()
    if len(names) != fc.out_features:
        raise BridgeError(f"{len(names)} ImageNet class names for a {fc.out_features}-way classifier")
    bridge = ConSEBridge(fc.out_features, fc.in_features, text_backbone.out_dim, top)
    bridge.fc_weight.copy_(fc.weight.detach())
    bridge.fc_bias.copy_(fc.bias.detach())
    bridge.classes.copy_(class_name_table(text_backbone, tokenizer, names, templates))
    log.info("ConSE bridge: %d ImageNet classes, top %d, %d template(s)", len(names), top, len(templates))
    return bridge
