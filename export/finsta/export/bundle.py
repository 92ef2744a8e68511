"""Export a trained model to a bundle (DESIGN.md §3): video tower, text tower, scorer, tokenizer
files and ``bundle.yaml``; flavour ``custom`` (finsta custom nodes) or ``portable`` (the same
graphs plus model-local functions, runnable in stock ONNX Runtime).

The bundle is written into a temporary directory beside the target and renamed into place only
after it loads in ``finsta_rt`` and reproduces PyTorch, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
import yaml
from torch import nn

from finsta_rt.bundle import FORMAT, FORMAT_VERSION, MANIFEST, Bundle, sha256_file
from finsta_rt.model import Model
from finsta_rt.preprocess import Preprocess

from .. import __version__
from ..models.towers import Scorer, TextTower, VideoTower
from .portable import OPS_DOMAIN, OPS_VERSION, attach_portable_functions

log = logging.getLogger(__name__)
for _noisy in ("onnx_ir", "onnxscript"):  # the exporter's passes log every rewrite at INFO
    logging.getLogger(_noisy).setLevel(logging.WARNING)

IR_VERSION = 10  # onnxruntime 1.31 reads IR <= 13; onnx 1.23 would write 14 (DESIGN.md §6)
OPSET = 18


class ExportError(RuntimeError):
    """The export failed or the exported bundle does not reproduce PyTorch."""


@dataclass
class ExportSpec:
    """Everything the exporter needs besides the modules."""

    family: str
    name: str
    preprocess: Preprocess
    vocab_file: Path
    lowercase: bool
    max_length: int
    model_config: dict


def default_bundle_dir(name: str, flavour: str) -> Path:
    """bundles/NAME (custom) or bundles/NAME-portable under the working directory."""
    return Path("bundles") / (name if flavour == "custom" else f"{name}-portable")


def _io(names: list[str], values, dims: list[list]) -> list[dict]:
    out = []
    for n, v, d in zip(names, values, dims):
        out.append({"name": n, "dtype": str(v.dtype).replace("torch.", ""), "shape": d})
    return out


def _export(module: nn.Module, args: tuple, input_names: list[str], output_names: list[str],
            dynamic_shapes: dict, path: Path) -> onnx.ModelProto:
    module.eval()
    with torch.no_grad():
        program = torch.onnx.export(module, args, dynamo=True, input_names=input_names, output_names=output_names,
                                    dynamic_shapes=dynamic_shapes, opset_version=OPSET, verbose=False)
    proto = program.model_proto
    proto.ir_version = min(proto.ir_version, IR_VERSION)
    return proto


def _finish(proto: onnx.ModelProto, flavour: str, meta: dict[str, str], path: Path) -> None:
    if flavour == "portable":
        attach_portable_functions(proto)
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


def export_bundle(
    video_tower: VideoTower,
    text_tower: TextTower,
    spec: ExportSpec,
    out_dir: str | Path | None = None,
    flavour: str = "custom",
    overwrite: bool = False,
    verify: bool = True,
    seed: int = 0,
) -> Path:
    """Writes the bundle and returns its directory. Raises ExportError if it does not reproduce PyTorch."""
    if flavour not in ("custom", "portable"):
        raise ValueError(f"flavour must be 'custom' or 'portable', got {flavour!r}")
    out = Path(out_dir) if out_dir else default_bundle_dir(spec.name, flavour)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    if not spec.vocab_file.is_file():
        raise FileNotFoundError(f"tokenizer vocabulary {spec.vocab_file} not found")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(out.parent, os.W_OK):
            raise PermissionError(f"{out.parent} is not writable")
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise PermissionError(f"cannot write the bundle {out}: {out.parent} is not writable "
                              f"({e.strerror or e})") from e

    g = torch.Generator().manual_seed(seed)
    S, T = spec.preprocess.size, spec.preprocess.frames
    frames = torch.randint(0, 256, (2, T, S, S, 3), dtype=torch.uint8, generator=g)
    ids = torch.randint(1000, 2000, (2, 9), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones_like(ids)
    with torch.no_grad():
        zv, zg, vt = video_tower.eval()(frames)
        zt = text_tower.eval()(ids, mask)
    scorer = Scorer()
    B, Nv, Nt, Sq = (torch.export.Dim(n, min=1, max=4096) for n in ("B", "Nv", "Nt", "S"))
    Tdyn = torch.export.Dim("T", min=1, max=512)  # the sample's T >= 2, so it is not specialised
    tok_dim = f"T*{vt.shape[1] // T}"
    meta_common = {
        "finsta.format": FORMAT, "finsta.format_version": str(FORMAT_VERSION), "finsta.family": spec.family,
        "finsta.flavour": flavour, "finsta.exporter_version": __version__,
        "finsta.preprocess": json.dumps(spec.preprocess.to_dict()),
    }
    tokenizer = {"kind": "wordpiece", "vocab": "vocab.txt", "lowercase": spec.lowercase, "max_length": spec.max_length}

    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a bundle is meant to be shared
    try:
        log.info("exporting video tower")
        proto = _export(video_tower, (frames,), ["frames"], ["video_embedding", "video_global", "video_tokens"],
                        {"frames": {0: B, 1: Tdyn}}, tmp / "video.onnx")
        _finish(proto, flavour, {**meta_common, "finsta.graph": "video"}, tmp / "video.onnx")
        log.info("exporting text tower")
        proto = _export(text_tower, (ids, mask), ["input_ids", "attention_mask"], ["text_embedding"],
                        {"input_ids": {0: B, 1: Sq}, "attention_mask": {0: B, 1: Sq}}, tmp / "text.onnx")
        _finish(proto, flavour, {**meta_common, "finsta.graph": "text", "finsta.tokenizer": json.dumps(tokenizer)},
                tmp / "text.onnx")
        log.info("exporting scorer")
        proto = _export(scorer, (zv, zt), ["video_embedding", "text_embedding"], ["scores"],
                        {"video_embedding": {0: Nv}, "text_embedding": {0: Nt}}, tmp / "scorer.onnx")
        _finish(proto, flavour, {**meta_common, "finsta.graph": "scorer"}, tmp / "scorer.onnx")
        shutil.copyfile(spec.vocab_file, tmp / "vocab.txt")

        Q, E, D = zv.shape[1], zv.shape[2], vt.shape[2]
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": spec.name,
            "family": spec.family,
            "flavour": flavour,
            "exporter": {"name": "finsta-export", "version": __version__, "torch": str(torch.__version__), "opset": OPSET},
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "preprocess": spec.preprocess.to_dict(),
            "tokenizer": tokenizer,
            "custom_ops": [{"domain": OPS_DOMAIN, "version": OPS_VERSION, "ops": ["STGraphAttention"],
                            "required": flavour == "custom"}],
            "graphs": {
                "video": {"file": "video.onnx",
                          "inputs": _io(["frames"], [frames], [["B", "T", S, S, 3]]),
                          "outputs": _io(["video_embedding", "video_global", "video_tokens"], [zv, zg, vt],
                                         [["B", Q, E], ["B", E], ["B", tok_dim, D]])},
                "text": {"file": "text.onnx",
                         "inputs": _io(["input_ids", "attention_mask"], [ids, mask], [["B", "S"], ["B", "S"]]),
                         "outputs": _io(["text_embedding"], [zt], [["B", E]])},
                "scorer": {"file": "scorer.onnx",
                           "inputs": _io(["video_embedding", "text_embedding"], [zv, zt], [["Nv", Q, E], ["Nt", E]]),
                           "outputs": [{"name": "scores", "dtype": "float32", "shape": ["Nt", "Nv"]}]},
            },
            "model": spec.model_config,
            "files": {f: sha256_file(tmp / f) for f in ("video.onnx", "text.onnx", "scorer.onnx", "vocab.txt")},
        }
        (tmp / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))
        if verify:
            verify_bundle(tmp, video_tower, text_tower, seed=seed + 1)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %s bundle %s", flavour, out)
    return out


def cosine_rows(a, b) -> "torch.Tensor":
    a, b = torch.as_tensor(a, dtype=torch.float64).flatten(1), torch.as_tensor(b, dtype=torch.float64).flatten(1)
    return torch.nn.functional.cosine_similarity(a, b, dim=1)


def verify_bundle(path: Path, video_tower: VideoTower, text_tower: TextTower, seed: int = 1,
                  min_cosine: float = 0.9999, max_score_diff: float = 1e-4) -> dict[str, float]:
    """Loads the bundle with finsta_rt (CPU) and compares it with PyTorch on fresh random inputs."""
    bundle = Bundle.load(path)
    model = Model(bundle, device="cpu")
    g = torch.Generator().manual_seed(seed)
    S, T = bundle.preprocess.size, bundle.preprocess.frames
    frames = torch.randint(0, 256, (3, T, S, S, 3), dtype=torch.uint8, generator=g)
    texts = ["a small red circle moves left", "then a large blue square appears", "x"]
    ids, mask = model.tokenizer(texts)
    with torch.no_grad():
        zv, zg, _ = video_tower.eval()(frames)
        zt = text_tower.eval()(torch.from_numpy(ids), torch.from_numpy(mask))
        ref_scores = Scorer()(zv, zt)
    got = model.embed_frames(frames.numpy())
    got_t = model.embed_text(texts)
    got_s = model.score(got["video_embedding"], got_t)
    report = {
        "video_cosine_min": float(cosine_rows(got["video_embedding"], zv).min()),
        "text_cosine_min": float(cosine_rows(got_t, zt).min()),
        "score_max_abs_diff": float((torch.from_numpy(got_s).double() - ref_scores.double()).abs().max()),
    }
    if report["video_cosine_min"] < min_cosine or report["text_cosine_min"] < min_cosine \
            or report["score_max_abs_diff"] > max_score_diff:
        raise ExportError(f"bundle {path} does not reproduce PyTorch: {report}")
    log.info("bundle %s reproduces PyTorch: %s", path, report)
    return report
