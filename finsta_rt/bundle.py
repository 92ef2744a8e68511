"""Model bundles: a directory with ``bundle.yaml``, ONNX graphs and tokenizer files (DESIGN.md §3).

Loading checks the format version, that every listed file stays inside the bundle directory and
matches its sha256, and never unpickles anything (YAML is read with ``safe_load``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .preprocess import Preprocess

log = logging.getLogger(__name__)

MANIFEST = "bundle.yaml"
FORMAT = "finsta-bundle"
FORMAT_VERSION = 1
FAMILIES = ("stgt", "finsta", "svilm")
FLAVOURS = ("custom", "portable")
GRAPHS = ("video", "text", "scorer")


class BundleError(ValueError):
    """A bundle is missing, malformed, altered or unsafe; the message names the file."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: list  # ints for fixed dims, strings for symbolic ones


@dataclass(frozen=True)
class GraphSpec:
    name: str
    path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


@dataclass(frozen=True)
class TokenizerSpec:
    kind: str
    vocab: Path
    lowercase: bool
    max_length: int


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _inside(root: Path, rel: Any, what: str) -> Path:
    """``root / rel`` if it stays inside ``root`` (no absolute paths, no '..', no symlink escape)."""
    if not isinstance(rel, str) or not rel:
        raise BundleError(f"{root / MANIFEST}: {what} must be a relative file name, got {rel!r}")
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise BundleError(f"{root / MANIFEST}: {what} {rel!r} leaves the bundle directory")
    full = (root / p).resolve()
    if not full.is_relative_to(root.resolve()):
        raise BundleError(f"{root / MANIFEST}: {what} {rel!r} resolves outside the bundle directory")
    return full


def _tensor_specs(items: Any, where: str) -> list[TensorSpec]:
    if not isinstance(items, list) or not items:
        raise BundleError(f"{where} must be a non-empty list")
    out = []
    for it in items:
        if not isinstance(it, dict) or not {"name", "dtype", "shape"} <= set(it):
            raise BundleError(f"{where}: each entry needs name, dtype and shape, got {it!r}")
        out.append(TensorSpec(str(it["name"]), str(it["dtype"]), list(it["shape"])))
    return out


class Bundle:
    """A loaded, verified bundle. ``Bundle.load(path)`` is the one way to get one."""

    def __init__(self, root: Path, manifest: dict, manifest_sha256: str):
        self.root = root
        self.manifest = manifest
        self.sha256 = manifest_sha256  # identifies the bundle (the manifest lists every file's hash)
        where = str(root / MANIFEST)
        self.family: str = manifest["family"]
        self.flavour: str = manifest["flavour"]
        self.name: str = str(manifest.get("name", root.name))
        try:
            self.preprocess = Preprocess.from_dict(manifest["preprocess"])
        except (TypeError, ValueError, KeyError) as e:
            raise BundleError(f"{where}: bad preprocess section: {e}") from e
        tok = manifest.get("tokenizer") or {}
        try:
            self.tokenizer_spec = TokenizerSpec(str(tok["kind"]), _inside(root, tok["vocab"], "tokenizer vocab"),
                                                bool(tok.get("lowercase", True)), int(tok["max_length"]))
        except (KeyError, TypeError, ValueError) as e:
            raise BundleError(f"{where}: bad tokenizer section ({e!r}); needs kind, vocab, max_length") from e
        self.graphs: dict[str, GraphSpec] = {}
        for g in GRAPHS:
            spec = (manifest.get("graphs") or {}).get(g)
            if not isinstance(spec, dict):
                raise BundleError(f"{where}: graphs.{g} is missing")
            self.graphs[g] = GraphSpec(g, _inside(root, spec.get("file"), f"graphs.{g}.file"),
                                       _tensor_specs(spec.get("inputs"), f"{where}: graphs.{g}.inputs"),
                                       _tensor_specs(spec.get("outputs"), f"{where}: graphs.{g}.outputs"))
        self.custom_ops: list[dict] = list(manifest.get("custom_ops") or [])

    @property
    def requires_op_library(self) -> bool:
        return self.flavour == "custom" and bool(self.custom_ops)

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> "Bundle":
        root = Path(path).expanduser()
        if root.is_file() and root.name == MANIFEST:
            root = root.parent
        mpath = root / MANIFEST
        if not root.is_dir():
            raise BundleError(f"bundle directory {root} does not exist")
        if not mpath.is_file():
            raise BundleError(f"{root} is not a bundle: {MANIFEST} is missing")
        raw = mpath.read_bytes()
        try:
            manifest = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise BundleError(f"{mpath}: not valid YAML: {e}") from e
        if not isinstance(manifest, dict):
            raise BundleError(f"{mpath}: expected a mapping at the top level")
        if manifest.get("format") != FORMAT:
            raise BundleError(f"{mpath}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(f"{mpath}: format_version {version!r} is not supported (this finsta-rt reads {FORMAT_VERSION}); "
                              "re-export the bundle or upgrade finsta-rt")
        if manifest.get("family") not in FAMILIES:
            raise BundleError(f"{mpath}: family {manifest.get('family')!r} is not one of {FAMILIES}")
        if manifest.get("flavour") not in FLAVOURS:
            raise BundleError(f"{mpath}: flavour {manifest.get('flavour')!r} is not one of {FLAVOURS}")
        files = manifest.get("files")
        if not isinstance(files, dict) or not files:
            raise BundleError(f"{mpath}: 'files' must map each file to its sha256")
        bundle = cls(root, manifest, hashlib.sha256(raw).hexdigest())
        listed = {_inside(root, f, "files entry") for f in files}
        for g in bundle.graphs.values():
            if g.path not in listed:
                raise BundleError(f"{mpath}: graph file {g.path.name} has no sha256 in 'files'")
        if bundle.tokenizer_spec.vocab not in listed:
            raise BundleError(f"{mpath}: tokenizer vocab {bundle.tokenizer_spec.vocab.name} has no sha256 in 'files'")
        if verify:
            for rel, digest in files.items():
                full = _inside(root, rel, "files entry")
                if not full.is_file():
                    raise BundleError(f"bundle file {full} is missing")
                actual = sha256_file(full)
                if actual != digest:
                    raise BundleError(f"bundle file {full} fails its sha256 check (expected {digest}, got {actual}): "
                                      "the file was altered or truncated")
        log.debug("loaded bundle %s (%s, %s)", root, bundle.family, bundle.flavour)
        return bundle

    def tokenizer(self):
        from .tokenizer import WordPieceTokenizer

        spec = self.tokenizer_spec
        if spec.kind != "wordpiece":
            raise BundleError(f"{self.root / MANIFEST}: tokenizer kind {spec.kind!r} is not supported")
        return WordPieceTokenizer.from_vocab_file(spec.vocab, lowercase=spec.lowercase, max_length=spec.max_length)

    def __repr__(self) -> str:
        return f"Bundle({str(self.root)!r}, family={self.family!r}, flavour={self.flavour!r})"
