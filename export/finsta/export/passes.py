"""Passes over a written bundle (docs/bundle.md): read its graphs, rewrite them, write a new bundle.

The flat flavour (:mod:`.flat`) and the fp16/int8 precisions (:mod:`.precision`) are such passes over
the fp32 bundle that ``export_bundle`` wrote and checked against PyTorch. :func:`rewrite_bundle` does
what they share: copy the bundle into a temporary directory beside the target, replace each graph
with the pass's result (its ``metadata_props`` updated to match), rewrite ``bundle.yaml`` with the new
keys and every file's sha256, load the result with ``finsta_rt`` and let the pass compare it with the
source, and only then rename it into place, so a failed pass leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import yaml

from finsta_rt.bundle import MANIFEST, Bundle, read_manifest, sha256_file
from finsta_rt.model import Model

from .api import IR_VERSION, ExportError

log = logging.getLogger(__name__)

CHECK_TEXTS = ["a small red circle moves left", "then a large blue square appears past a small green triangle", "x"]

# (graph name, its model) -> the rewritten model, or None to keep the file as it is
GraphPass = Callable[[str, onnx.ModelProto], onnx.ModelProto | None]


@contextlib.contextmanager
def staged_dir(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """A fresh directory beside ``out`` (same file system, the umask's permissions) that replaces ``out``
    when the block ends without an error and is removed when it raises: a bundle appears whole or not at all."""
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise PermissionError(f"cannot write the bundle {out}: {out.parent} is not writable ({e.strerror or e})") from e
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a bundle is meant to be shared
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_graph(proto: onnx.ModelProto, meta: dict[str, str], path: Path) -> None:
    """Checks and saves a rewritten graph with its ``metadata_props`` updated by ``meta``."""
    props = {p.key: p.value for p in proto.metadata_props}
    props.update(meta)
    del proto.metadata_props[:]
    for k, v in props.items():
        proto.metadata_props.add(key=k, value=v)
    proto.ir_version = min(proto.ir_version, IR_VERSION)  # the converters may raise it past what ORT reads
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


def rewrite_bundle(
    src: str | Path,
    out: str | Path,
    graph_pass: GraphPass,
    manifest_update: dict,
    check: Callable[[Bundle, Path], None] | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes ``out``: the bundle ``src`` with each graph passed through ``graph_pass`` and the manifest's
    top-level keys updated by ``manifest_update`` (their ``finsta.*`` twins set in every graph's
    ``metadata_props`` too); ``check(source bundle, new directory)`` runs before the rename."""
    source = Bundle.load(src)
    out = Path(out)
    if out.resolve() == source.root.resolve():
        raise ValueError(f"a pass writes a new bundle: {out} is its source")
    manifest, _ = read_manifest(source.root / MANIFEST)
    meta = {f"finsta.{k}": str(v) for k, v in manifest_update.items() if isinstance(v, str)}
    with staged_dir(out, overwrite) as tmp:
        for full in source.files:
            rel = full.relative_to(source.root.resolve())
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(full, tmp / rel)
        for name, g in source.graphs.items():
            rel = g.path.relative_to(source.root.resolve())
            new = graph_pass(name, onnx.load(g.path))
            if new is not None or meta:
                save_graph(new if new is not None else onnx.load(g.path), meta, tmp / rel)
        manifest.update(manifest_update)
        manifest["files"] = {rel: sha256_file(tmp / rel) for rel in manifest["files"]}
        (tmp / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))
        if check is not None:
            check(source, tmp)
    log.info("wrote %s from %s", out, source.root)
    return out


def check_frames(bundle: Bundle, n: int = 2, seed: int = 1) -> np.ndarray:
    """``n`` seeded random uint8 clips of the bundle's shape, to compare two bundles on."""
    p = bundle.preprocess
    return np.random.default_rng(seed).integers(0, 256, (n, p.frames, p.size, p.size, 3), dtype=np.uint8)


def _rows(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cosine of each row of ``a`` with the same row of ``b`` (float64; 1 where both are zero)."""
    a, b = _rows(a), _rows(b)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (a * b).sum(1) / (na * nb)
    return np.where(both_zero, 1.0, np.nan_to_num(c, nan=0.0))


def compare_bundles(
    reference: Bundle | Model, candidate: Bundle | Model, frames: np.ndarray, texts: list[str]
) -> dict[str, float]:
    """The lowest row cosine of every video and text output and the largest absolute difference of
    every scorer output of ``candidate`` against ``reference`` on the same frames and texts."""
    ref = reference if isinstance(reference, Model) else Model(reference, device="cpu")
    got = candidate if isinstance(candidate, Model) else Model(candidate, device="cpu")
    report: dict[str, float] = {}
    parts = []
    for m in (ref, got):
        v, t = m.embed_frames(frames), m.embed_texts(texts)
        parts.append((v, t, m.score_parts(v, t)))
    (rv, rt, rs), (gv, gt, gs) = parts
    for name, r in {**rv, **rt}.items():
        r, g = np.asarray(r), np.asarray({**gv, **gt}[name])
        if np.issubdtype(r.dtype, np.floating):
            report[f"{name}_cosine_min"] = float(row_cosines(g, r).min())
        else:  # a quantized tower may flip an argmax (S-ViLM's group assignment): a rate, not a count
            report[f"{name}_mismatch_rate"] = float((g != r).mean())
    for name, r in rs.items():
        report[f"{name}_max_abs_diff"] = float(np.abs(gs[name].astype(np.float64) - r.astype(np.float64)).max())
    return report


def require(
    report: dict[str, float], min_cosine: float, max_score_diff: float, what: str, max_mismatch_rate: float = 0.0
) -> None:
    """Raises ExportError naming every entry of ``report`` past its bound."""
    bad = {
        k: v
        for k, v in report.items()
        if (k.endswith("_cosine_min") and not v >= min_cosine)
        or (k.endswith("_mismatch_rate") and not v <= max_mismatch_rate)
        or (k.endswith("_max_abs_diff") and not v <= max_score_diff)
    }
    if bad:
        raise ExportError(
            f"{what}: {bad} past its bound (cosine >= {min_cosine}, scores within {max_score_diff}, integer "
            f"outputs differing in at most {max_mismatch_rate:.0%}; all: {report})"
        )
    log.info("%s: %s", what, report)
