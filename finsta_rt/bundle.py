"""Model bundles: a directory with ``bundle.yaml``, ONNX graphs and tokenizer files (docs/bundle.md).

Loading bounds ``bundle.yaml`` before parsing it (size, nesting, node count, no aliases), checks every
key's type and shape (a wrong one is a BundleError naming the key), the format version, that every
listed file stays inside the bundle directory and matches its sha256, and never unpickles anything
(YAML is read with a safe loader). The family is a plain name; what a bundle can do is read from its
graphs' declared inputs and outputs.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from .preprocess import Preprocess
from .tokenizer import TOKENIZER_KINDS, WordPieceTokenizer

log = logging.getLogger(__name__)

MANIFEST = "bundle.yaml"
FORMAT = "finsta-bundle"
FORMAT_VERSION = 1
FLAVOURS = ("custom", "portable", "flat")  # flat: every model-local function inlined, standard ONNX only
PRECISIONS = ("fp32", "fp16", "int8")  # of the towers' arithmetic; graph inputs and outputs keep their dtypes
GRAPHS = ("video", "text", "scorer")
# A real bundle.yaml is a few KB, about 6 levels deep and 200-500 values: these bounds refuse
# hostile files (a 50 MB list took 203 s and 3.9 GB to parse; 100,000 nested '[' overflowed the stack)
# long before they cost anything, and leave room for big model sections.
MAX_MANIFEST_BYTES = 1 << 20
MAX_NESTING = 32
MAX_NODES = 10_000
MAX_DIM = 2**31 - 1
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DTYPES = (
    "float32",
    "float16",
    "bfloat16",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "string",
)
TOKENIZER_KEYS = ("kind", "vocab", "merges", "lowercase", "max_length")
SHA256 = re.compile(r"[0-9a-f]{64}")
_OPENERS = re.compile(rb"[\[{](?:[ \t\r\n]*[\[{]){%d}" % MAX_NESTING)  # MAX_NESTING + 1 flow openers in a row


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
    kind: str  # one of TOKENIZER_KINDS; a bundle without one is wordpiece (format 1 before clip_bpe)
    vocab: Path  # wordpiece: vocab.txt; clip_bpe: vocab.json
    lowercase: bool
    max_length: int
    merges: Path | None = None  # clip_bpe: merges.txt

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file the tokenizer reads (each must be listed, with its sha256, in 'files')."""
        return (self.vocab,) if self.merges is None else (self.vocab, self.merges)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _finite(x: int | float) -> bool:
    """A number that float32 arithmetic can use (an int of 400 digits overflows float())."""
    try:
        return math.isfinite(float(x))
    except OverflowError:
        return False


def _inside(root: Path, rel: Any, what: str) -> Path:
    """``root / rel`` if it stays inside ``root`` (no absolute paths, no '..', no symlink escape)."""
    if not isinstance(rel, str) or not rel or "\0" in rel:
        raise BundleError(f"{root / MANIFEST}: {what} must be a relative file name, got {rel!r}")
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise BundleError(f"{root / MANIFEST}: {what} {rel!r} leaves the bundle directory")
    full = (root / p).resolve()
    if not full.is_relative_to(root.resolve()):
        raise BundleError(f"{root / MANIFEST}: {what} {rel!r} resolves outside the bundle directory")
    return full


class _ManifestLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and bounds nesting depth and node count while composing (the
    composer is recursive: without the bound, deep nesting ends in RecursionError)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = self._nodes = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            ev = self.peek_event()
            raise yaml.YAMLError(
                f"line {ev.start_mark.line + 1}: YAML aliases (*{ev.anchor}) are not allowed in a bundle manifest"
            )
        self._depth += 1
        self._nodes += 1
        if self._depth > MAX_NESTING:
            raise yaml.YAMLError(
                f"line {self.peek_event().start_mark.line + 1}: nested deeper than {MAX_NESTING} levels"
            )
        if self._nodes > MAX_NODES:
            raise yaml.YAMLError(f"more than {MAX_NODES} values")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_manifest(path: Path) -> tuple[dict, bytes]:
    """The parsed ``bundle.yaml`` and its bytes; BundleError for a file too big, unreadable, not YAML,
    nested too deep, holding aliases, or not a mapping."""
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise BundleError(
                f"{path}: {size} bytes is larger than the {MAX_MANIFEST_BYTES} a bundle manifest may have"
            )
        with open(path, "rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)  # the file may grow between stat and read
    except OSError as e:
        raise BundleError(f"{path}: cannot read: {e.strerror or e}") from e
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path}: larger than the {MAX_MANIFEST_BYTES} bytes a bundle manifest may have")
    if _OPENERS.search(raw):  # the cheap common case before parsing; the loader bounds every other nesting
        raise BundleError(f"{path}: not valid YAML: nested deeper than {MAX_NESTING} levels")
    try:
        loader = _ManifestLoader(raw)  # reads the first bytes already
        try:
            manifest = loader.get_single_data()
        finally:
            loader.dispose()
    except (yaml.YAMLError, ValueError) as e:  # ValueError: a timestamp like 2026-13-45 that no date can hold
        raise BundleError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from e
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: expected a mapping at the top level, got {_kind(manifest)}")
    return manifest, raw


def _kind(v: Any) -> str:
    """A value for a message: its type, and the value itself if short."""
    if v is None:
        return "nothing (null)"
    text = repr(v)
    return f"{type(v).__name__} {text}" if len(text) <= 40 else f"a {type(v).__name__}"


class _Schema:
    """Type checks of manifest values; each failure is a BundleError naming ``file: key``."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, what: str, v: Any) -> None:
        raise BundleError(f"{self.where}: {key} must be {what}, got {_kind(v)}")

    def mapping(self, v: Any, key: str, required: tuple[str, ...] = (), allowed: tuple[str, ...] | None = None) -> dict:
        if not isinstance(v, dict):
            self.fail(key, "a mapping", v)
        for k in v:
            if not isinstance(k, str):
                self.fail(f"{key}: each key" if key else "each top-level key", "a string", k)
            if allowed is not None and k not in allowed:
                raise BundleError(f"{self.where}: {key}.{k} is not a known key (known: {', '.join(allowed)})")
        for k in required:
            if k not in v:
                raise BundleError(f"{self.where}: {key}.{k} is missing" if key else f"{self.where}: {k} is missing")
        return v

    def string(
        self,
        v: Any,
        key: str,
        pattern: re.Pattern | None = None,
        choices: tuple[str, ...] | None = None,
        what: str = "a non-empty string",
    ) -> str:
        if not isinstance(v, str) or not v or (pattern and not pattern.fullmatch(v)) or (choices and v not in choices):
            self.fail(key, f"one of {', '.join(choices)}" if choices else what, v)
        return v

    def integer(self, v: Any, key: str, lo: int = 0, hi: int = MAX_DIM) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            self.fail(key, f"an integer in [{lo}, {hi}]", v)
        return v

    def boolean(self, v: Any, key: str) -> bool:
        if not isinstance(v, bool):
            self.fail(key, "true or false", v)
        return v

    def items(self, v: Any, key: str, nonempty: bool = True) -> list:
        if not isinstance(v, list) or (nonempty and not v):
            self.fail(key, "a non-empty list" if nonempty else "a list", v)
        return v

    def tensors(self, v: Any, key: str) -> list[TensorSpec]:
        out = []
        for i, it in enumerate(self.items(v, key)):
            k = f"{key}[{i}]"
            it = self.mapping(it, k, required=("name", "dtype", "shape"), allowed=("name", "dtype", "shape"))
            shape = self.items(it["shape"], f"{k}.shape", nonempty=False)
            for j, d in enumerate(shape):
                if isinstance(d, str):
                    self.string(d, f"{k}.shape[{j}]")
                else:
                    self.integer(d, f"{k}.shape[{j}]")
            out.append(
                TensorSpec(
                    self.string(it["name"], f"{k}.name"),
                    self.string(it["dtype"], f"{k}.dtype", choices=DTYPES),
                    list(shape),
                )
            )
        names = [t.name for t in out]
        if len(set(names)) != len(names):
            raise BundleError(f"{self.where}: {key} names a tensor twice: {names}")
        return out


def _preprocess(sc: _Schema, v: Any) -> Preprocess:
    known = tuple(f.name for f in fields(Preprocess))
    d = sc.mapping(v, "preprocess", required=("size", "frames"), allowed=known)
    for k in ("size", "frames"):
        sc.integer(d[k], f"preprocess.{k}", lo=1, hi=1 << 16)
    for k in ("resize", "interpolation", "colour", "dtype", "sampling"):
        if k in d:
            sc.string(d[k], f"preprocess.{k}")
    for k in ("mean", "std"):
        if k in d and (
            not isinstance(d[k], list)
            or len(d[k]) != 3
            or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not _finite(x) for x in d[k])
        ):
            sc.fail(f"preprocess.{k}", "a list of 3 numbers", d[k])
    try:
        return Preprocess.from_dict(d)
    except ValueError as e:
        raise BundleError(f"{sc.where}: preprocess: {e}") from e


def _check_io(sc: _Schema, graphs: dict[str, GraphSpec]) -> None:
    """What the runtime feeds each graph must be what the graph declares: the capabilities of a bundle
    come from these names, never from its family."""
    video, text = ({t.name: t for t in graphs[g].inputs} for g in ("video", "text"))
    frames = video.get("frames")
    if frames is None or frames.dtype != "uint8" or len(frames.shape) != 5:
        raise BundleError(f"{sc.where}: graphs.video.inputs must hold frames (uint8, [B, T, S, S, 3])")
    slots = {"slot_box", "slot_mask", "slot_adj"}  # a user video graph (Model.video_inputs)
    if set(video) - {"frames"} not in (set(), slots):
        raise BundleError(
            f"{sc.where}: graphs.video.inputs {sorted(video)}: this finsta-rt feeds frames, and "
            f"optionally all of {sorted(slots)}"
        )
    if "slot_mask" in video and not all(isinstance(d, int) for d in video["slot_mask"].shape[1:3]):
        raise BundleError(
            f"{sc.where}: graphs.video.inputs slot_mask needs fixed T and K dims, got {video['slot_mask'].shape}"
        )
    if "input_ids" not in text:
        raise BundleError(f"{sc.where}: graphs.text.inputs must hold input_ids")
    if "node_type" in text and not (len(text["node_type"].shape) > 1 and isinstance(text["node_type"].shape[1], int)):
        raise BundleError(
            f"{sc.where}: graphs.text.inputs node_type needs a fixed node count, got {text['node_type'].shape}"
        )
    for g, out in (("video", "video_embedding"), ("text", "text_embedding")):
        if out not in {t.name for t in graphs[g].outputs}:
            raise BundleError(f"{sc.where}: graphs.{g}.outputs must hold {out}")
    given = {"video": {t.name for t in graphs["video"].outputs}, "text": {t.name for t in graphs["text"].outputs}}
    for i, t in enumerate(graphs["scorer"].inputs):
        src = "video" if t.name.startswith("video_") else "text"  # how Model.score_parts feeds the scorer
        if t.name not in given[src]:
            raise BundleError(f"{sc.where}: graphs.scorer.inputs[{i}].name {t.name!r} is not an output of graphs.{src}")


def _tokenizer(sc: _Schema, root: Path, v: Any) -> TokenizerSpec:
    """The tokenizer section: its kind (default wordpiece), its files (inside the bundle), max_length."""
    tok = sc.mapping(v, "tokenizer", required=("vocab", "max_length"), allowed=TOKENIZER_KEYS)
    kind = sc.string(tok.get("kind", "wordpiece"), "tokenizer.kind")
    if kind not in TOKENIZER_KINDS:
        raise BundleError(f"{sc.where}: tokenizer.kind {kind!r} is not one of {', '.join(TOKENIZER_KINDS)}")
    lowercase = sc.boolean(tok.get("lowercase", True), "tokenizer.lowercase")
    merges = None
    if kind == "clip_bpe":
        if "merges" not in tok:
            raise BundleError(f"{sc.where}: tokenizer.merges is missing (kind clip_bpe reads a vocab and merges)")
        merges = _inside(root, sc.string(tok["merges"], "tokenizer.merges"), "tokenizer.merges")
        if not lowercase:
            raise BundleError(f"{sc.where}: tokenizer.lowercase must be true for kind clip_bpe (CLIP lower-cases)")
    elif "merges" in tok:
        raise BundleError(f"{sc.where}: tokenizer.merges is only for kind clip_bpe, not {kind}")
    return TokenizerSpec(
        kind,
        _inside(root, sc.string(tok["vocab"], "tokenizer.vocab"), "tokenizer.vocab"),
        lowercase,
        # 1 as the C++ loader (the tokenizers refuse < 2 themselves: room for the start and end tokens)
        sc.integer(tok["max_length"], "tokenizer.max_length", lo=1, hi=1 << 20),
        merges,
    )


def tokenizer_from_spec(spec: TokenizerSpec):
    """The one factory of runtime tokenizers: the tokenizer a bundle's tokenizer section states."""
    if spec.kind == "clip_bpe":
        from .clip_tokenizer import ClipBpeTokenizer  # its \\p classes are built on first use

        return ClipBpeTokenizer.from_files(spec.vocab, spec.merges, max_length=spec.max_length)
    if spec.kind == "wordpiece":
        return WordPieceTokenizer.from_vocab_file(spec.vocab, lowercase=spec.lowercase, max_length=spec.max_length)
    raise BundleError(f"tokenizer kind {spec.kind!r} is not one of {', '.join(TOKENIZER_KINDS)}")


class Bundle:
    """A loaded, verified bundle. ``Bundle.load(path)`` is the one way to get one."""

    def __init__(self, root: Path, manifest: dict, manifest_sha256: str):
        self.root = root
        self.manifest = manifest
        self.sha256 = manifest_sha256  # identifies the bundle (the manifest lists every file's hash)
        where = str(root / MANIFEST)
        sc = _Schema(where)
        sc.mapping(
            manifest,
            "",
            required=("format", "format_version", "family", "flavour", "preprocess", "tokenizer", "graphs", "files"),
        )
        if manifest["format"] != FORMAT:
            raise BundleError(f"{where}: format is {manifest['format']!r}, expected {FORMAT!r}")
        version = manifest["format_version"]
        if isinstance(version, bool) or version != FORMAT_VERSION or not isinstance(version, int):
            raise BundleError(
                f"{where}: format_version {version!r} is not supported (this finsta-rt reads "
                f"{FORMAT_VERSION}); re-export the bundle or upgrade finsta-rt"
            )
        self.family: str = sc.string(
            manifest["family"], "family", PLAIN_NAME, what="a plain name (letters, digits, '_', '.', '-'; at most 64)"
        )
        self.flavour: str = sc.string(manifest["flavour"], "flavour", choices=FLAVOURS)
        # optional (bundles written before it are fp32); informational to the runtime: sessions read the graphs
        self.precision: str = sc.string(manifest.get("precision", "fp32"), "precision", choices=PRECISIONS)
        self.name: str = sc.string(manifest.get("name", root.name), "name")
        for k in ("exporter", "model"):
            if k in manifest:
                sc.mapping(manifest[k], k)
        if "created" in manifest and not isinstance(manifest["created"], (str, _dt.date)):
            sc.fail("created", "a timestamp", manifest["created"])
        self.preprocess = _preprocess(sc, manifest["preprocess"])
        self.tokenizer_spec = _tokenizer(sc, root, manifest["tokenizer"])
        graphs = sc.mapping(manifest["graphs"], "graphs", required=GRAPHS)
        self.graphs: dict[str, GraphSpec] = {}
        for g in GRAPHS:
            spec = sc.mapping(graphs[g], f"graphs.{g}", required=("file", "inputs", "outputs"))
            file = _inside(root, sc.string(spec["file"], f"graphs.{g}.file"), f"graphs.{g}.file")
            self.graphs[g] = GraphSpec(
                g,
                file,
                sc.tensors(spec["inputs"], f"graphs.{g}.inputs"),
                sc.tensors(spec["outputs"], f"graphs.{g}.outputs"),
            )
        _check_io(sc, self.graphs)
        self.custom_ops: list[dict] = []
        for i, op in enumerate(sc.items(manifest.get("custom_ops") or [], "custom_ops", nonempty=False)):
            k = f"custom_ops[{i}]"
            op = sc.mapping(op, k, required=("domain", "version", "ops"))
            sc.string(op["domain"], f"{k}.domain")
            sc.integer(op["version"], f"{k}.version", lo=1)
            for j, name in enumerate(sc.items(op["ops"], f"{k}.ops", nonempty=False)):
                sc.string(name, f"{k}.ops[{j}]")
            if "required" in op:
                sc.boolean(op["required"], f"{k}.required")
            self.custom_ops.append(op)
        if self.flavour == "flat" and any(op["ops"] for op in self.custom_ops):
            raise BundleError(
                f"{where}: flavour flat holds standard ONNX only, but custom_ops lists "
                f"{sorted(n for op in self.custom_ops for n in op['ops'])}"
            )
        files = sc.mapping(manifest["files"], "files")
        if not files:
            raise BundleError(f"{where}: 'files' must map each file to its sha256")
        self.files: dict[Path, str] = {}
        for rel, digest in files.items():
            full = _inside(root, rel, "files entry")
            self.files[full] = sc.string(digest, f"files.{rel}", SHA256, what="a sha256 (64 lowercase hex digits)")

    @property
    def requires_op_library(self) -> bool:
        return self.flavour == "custom" and bool(self.custom_ops)

    def takes(self, graph: str, name: str) -> bool:
        """Whether ``graph`` declares the input ``name`` (what a bundle can do is read from its graphs)."""
        return any(t.name == name for t in self.graphs[graph].inputs)

    def gives(self, graph: str, name: str) -> bool:
        """Whether ``graph`` declares the output ``name``."""
        return any(t.name == name for t in self.graphs[graph].outputs)

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> Bundle:
        root = Path(path).expanduser()
        if root.is_file() and root.name == MANIFEST:
            root = root.parent
        mpath = root / MANIFEST
        if not root.is_dir():
            raise BundleError(f"bundle directory {root} does not exist")
        if not mpath.is_file():
            raise BundleError(f"{root} is not a bundle: {MANIFEST} is missing")
        manifest, raw = read_manifest(mpath)
        bundle = cls(root, manifest, hashlib.sha256(raw).hexdigest())
        for g in bundle.graphs.values():
            if g.path not in bundle.files:
                raise BundleError(f"{mpath}: graph file {g.path.name} has no sha256 in 'files'")
        for what, f in (("vocab", bundle.tokenizer_spec.vocab), ("merges", bundle.tokenizer_spec.merges)):
            if f is not None and f not in bundle.files:
                raise BundleError(f"{mpath}: tokenizer {what} {f.name} has no sha256 in 'files'")
        if verify:
            for full, digest in bundle.files.items():
                if not full.is_file():
                    raise BundleError(f"bundle file {full} is missing")
                try:
                    actual = sha256_file(full)
                except OSError as e:
                    raise BundleError(f"bundle file {full} cannot be read: {e.strerror or e}") from e
                if actual != digest:
                    raise BundleError(
                        f"bundle file {full} fails its sha256 check (expected {digest}, got {actual}): "
                        "the file was altered or truncated"
                    )
        log.debug("loaded bundle %s (%s, %s, %s)", root, bundle.family, bundle.flavour, bundle.precision)
        return bundle

    def tokenizer(self):
        """The tokenizer this bundle's text graph was trained with (``tokenizer_from_spec``)."""
        return tokenizer_from_spec(self.tokenizer_spec)

    def __repr__(self) -> str:
        return (
            f"Bundle({str(self.root)!r}, family={self.family!r}, flavour={self.flavour!r}, "
            f"precision={self.precision!r})"
        )
