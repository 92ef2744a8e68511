"""Export a trained model to a bundle (docs/bundle.md): video tower, text tower, scorer, tokenizer
files and ``bundle.yaml``; flavour ``custom`` (finsta custom nodes) or ``portable`` (the same
graphs plus model-local functions, runnable in stock ONNX Runtime).

The bundle is written into a temporary directory beside the target and renamed into place only
after it loads in ``finsta_rt`` and reproduces PyTorch, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
import yaml
from torch import nn

from finsta_rt.bundle import FORMAT, FORMAT_VERSION, MANIFEST, Bundle, sha256_file
from finsta_rt.model import Model
from finsta_rt.preprocess import Preprocess
from finsta_rt.tokenizer import TOKENIZER_KINDS

from .. import __version__
from ..models.towers import Scorer, TextTower, VideoTower
from .api import IR_VERSION, OPSET, ExportError, exporter_noise_silenced, finish, trace
from .passes import staged_dir
from .portable import OPS_DOMAIN, OPS_VERSION

__all__ = [
    "IR_VERSION",
    "OPSET",
    "ExportError",
    "ExportSpec",
    "GraphExport",
    "GraphBuilder",
    "export_bundle",
    "export_bundles",
    "verify_bundle",
    "stgt_graphs",
    "io_specs",
    "example_inputs",
    "tokenizer_section",
]

log = logging.getLogger(__name__)


@dataclass
class ExportSpec:
    """Everything the exporter needs besides the modules."""

    family: str
    name: str
    preprocess: Preprocess
    vocab_file: Path  # wordpiece: vocab.txt; clip_bpe: vocab.json
    lowercase: bool
    max_length: int
    model_config: dict
    tokenizer_kind: str = "wordpiece"  # one of finsta_rt.tokenizer.TOKENIZER_KINDS
    merges_file: Path | None = None  # clip_bpe: merges.txt

    @classmethod
    def for_text_backbone(
        cls, family: str, name: str, preprocess: Preprocess, text_config, model_config: dict
    ) -> ExportSpec:
        """The spec of a bundle whose tokenizer is the one a text backbone's ``config`` (a TextConfig:
        wordpiece or clip_bpe) names."""
        tc = text_config
        return cls(
            family,
            name,
            preprocess,
            Path(tc.vocab_file),
            tc.lowercase,
            tc.max_length,
            model_config,
            tokenizer_kind=tc.tokenizer_kind,
            merges_file=None if tc.merges_file is None else Path(tc.merges_file),
        )


def tokenizer_section(spec: ExportSpec) -> tuple[dict, dict[str, Path]]:
    """The manifest's tokenizer section and the files it names (bundle file name -> source file)."""
    if spec.tokenizer_kind not in TOKENIZER_KINDS:
        raise ValueError(f"tokenizer kind must be one of {TOKENIZER_KINDS}, got {spec.tokenizer_kind!r}")
    if spec.tokenizer_kind == "clip_bpe":
        if spec.merges_file is None:
            raise ValueError("tokenizer kind clip_bpe needs merges_file (merges.txt) besides vocab_file (vocab.json)")
        files = {"vocab.json": Path(spec.vocab_file), "merges.txt": Path(spec.merges_file)}
        section = {"kind": "clip_bpe", "vocab": "vocab.json", "merges": "merges.txt", "max_length": spec.max_length}
    else:
        if spec.merges_file is not None:
            raise ValueError(f"merges_file is only for tokenizer kind clip_bpe, not {spec.tokenizer_kind}")
        files = {"vocab.txt": Path(spec.vocab_file)}
        section = {"kind": "wordpiece", "vocab": "vocab.txt", "lowercase": spec.lowercase}
        section["max_length"] = spec.max_length
    for name, src in files.items():
        if not src.is_file():
            raise FileNotFoundError(f"tokenizer file {src} ({name}) not found")
    return section, files


def default_bundle_dir(name: str, flavour: str) -> Path:
    """bundles/NAME (custom) or bundles/NAME-portable under the working directory."""
    return Path("bundles") / (name if flavour == "custom" else f"{name}-portable")


def io_specs(names: list[str], values, dims: list[list]) -> list[dict]:
    """The manifest's entries of a graph's inputs or outputs: name, dtype of the example value, shape."""
    out = []
    for n, v, d in zip(names, values, dims):
        out.append({"name": n, "dtype": str(v.dtype).replace("torch.", ""), "shape": d})
    return out


# the names other modules import from here (export.passes, tests)
_exporter_noise_silenced = exporter_noise_silenced


def _export(
    module: nn.Module, args: tuple, input_names: list[str], output_names: list[str], dynamic_shapes: dict, path: Path
) -> onnx.ModelProto:
    return trace(module, args, input_names, output_names, dynamic_shapes)


def _finish(
    proto: onnx.ModelProto, flavour: str, meta: dict[str, str], path: Path, module: nn.Module | None = None
) -> None:
    finish(proto, flavour, meta, path, module)


@dataclass
class GraphExport:
    """One graph of a bundle: the module, example inputs, names, dynamic dims and manifest shapes.
    A family's graph builder returns one per graph name (video, text, scorer)."""

    module: nn.Module
    args: tuple
    inputs: list[str]
    outputs: list[str]
    dynamic: dict
    input_specs: list[dict]
    output_specs: list[dict]


# (video tower, text tower, scorer, spec, generator for the example inputs) -> graphs by name
GraphBuilder = Callable[[nn.Module, nn.Module, nn.Module, ExportSpec, torch.Generator], dict[str, GraphExport]]


def stgt_graphs(
    video_tower: nn.Module, text_tower: nn.Module, scorer: nn.Module, spec: ExportSpec, g: torch.Generator
) -> dict[str, GraphExport]:
    """STGT's graphs (the default): frames -> query embeddings, pooled embedding and compressed
    tokens; token ids and mask -> text embedding; max-over-queries scorer."""
    S, T = spec.preprocess.size, spec.preprocess.frames
    frames, ids, mask = example_inputs(spec, g)
    with torch.no_grad():
        zv, zg, vt = video_tower.eval()(frames)
        zt = text_tower.eval()(ids, mask)
    B, Nv, Nt, Sq = (torch.export.Dim(n, min=1, max=4096) for n in ("B", "Nv", "Nt", "S"))
    Tdyn = torch.export.Dim("T", min=1, max=512)  # the sample's T >= 2, so it is not specialised
    Q, E, D = zv.shape[1], zv.shape[2], vt.shape[2]
    return {
        "video": GraphExport(
            video_tower,
            (frames,),
            ["frames"],
            ["video_embedding", "video_global", "video_tokens"],
            {"frames": {0: B, 1: Tdyn}},
            io_specs(["frames"], [frames], [["B", "T", S, S, 3]]),
            io_specs(
                ["video_embedding", "video_global", "video_tokens"],
                [zv, zg, vt],
                # tokens per frame when they grow with T (STGT's compressed tokens), else a fixed count (meanpool: 1)
                [
                    ["B", Q, E],
                    ["B", E],
                    ["B", f"T*{vt.shape[1] // T}" if vt.shape[1] % T == 0 and vt.shape[1] >= T else vt.shape[1], D],
                ],
            ),
        ),
        "text": GraphExport(
            text_tower,
            (ids, mask),
            ["input_ids", "attention_mask"],
            ["text_embedding"],
            {"input_ids": {0: B, 1: Sq}, "attention_mask": {0: B, 1: Sq}},
            io_specs(["input_ids", "attention_mask"], [ids, mask], [["B", "S"], ["B", "S"]]),
            io_specs(["text_embedding"], [zt], [["B", E]]),
        ),
        "scorer": GraphExport(
            scorer,
            (zv, zt),
            ["video_embedding", "text_embedding"],
            ["scores"],
            {"video_embedding": {0: Nv}, "text_embedding": {0: Nt}},
            io_specs(["video_embedding", "text_embedding"], [zv, zt], [["Nv", Q, E], ["Nt", E]]),
            [{"name": "scores", "dtype": "float32", "shape": ["Nt", "Nv"]}],
        ),
    }


def example_inputs(spec: ExportSpec, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two random uint8 clips [2, T, S, S, 3] and two token sequences (ids, mask) to trace with."""
    S, T = spec.preprocess.size, spec.preprocess.frames
    frames = torch.randint(0, 256, (2, T, S, S, 3), dtype=torch.uint8, generator=g)
    if spec.tokenizer_kind == "clip_bpe":  # ids the vocabulary holds, each row ending in <|endoftext|>
        from finsta_rt.clip_tokenizer import ClipBpeTokenizer

        tok = ClipBpeTokenizer.from_files(spec.vocab_file, spec.merges_file, max_length=spec.max_length)
        ids = torch.randint(0, min(2000, tok.vocab_size - 2), (2, 9), generator=g)
        ids[:, 0], ids[:, -1] = tok.bos_id, tok.eos_id
        return frames, ids, torch.ones_like(ids)
    ids = torch.randint(1000, 2000, (2, 9), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    return frames, ids, torch.ones_like(ids)


def example_user_graph(batch: int, frames: int, slots: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """slot_box, slot_mask, slot_adj for ``batch`` videos: the first without a user graph (all
    False), the others with random boxes, so that both paths of the video graph are exercised."""
    x0y0 = torch.rand(batch, frames, slots, 2, generator=g) * 0.6
    wh = 0.1 + torch.rand(batch, frames, slots, 2, generator=g) * 0.3
    box = torch.cat([x0y0, x0y0 + wh], dim=-1)
    mask = torch.rand(batch, frames, slots, generator=g) < 0.7
    mask[0] = False
    adj = torch.rand(batch, frames, slots, slots, generator=g) < 0.5
    adj = adj | adj.transpose(-1, -2) | torch.eye(slots, dtype=torch.bool)
    return box, mask, adj


def export_bundle(
    video_tower: VideoTower,
    text_tower: TextTower,
    spec: ExportSpec,
    out_dir: str | Path | None = None,
    flavour: str = "custom",
    overwrite: bool = False,
    verify: bool = True,
    seed: int = 0,
    scorer: nn.Module | None = None,
    graphs: GraphBuilder | None = None,
) -> Path:
    """Writes the bundle and returns its directory. Raises ExportError if it does not reproduce PyTorch.

    ``scorer`` defaults to the STGT max-over-queries :class:`Scorer` and ``graphs`` (what to trace,
    with which example inputs and dynamic dims) to :func:`stgt_graphs`; a family with other graph
    inputs or outputs passes its own (finsta.families)."""
    outs = {flavour: out_dir}
    return export_bundles(video_tower, text_tower, spec, outs, overwrite, verify, seed, scorer, graphs)[flavour]


def export_bundles(
    video_tower: VideoTower,
    text_tower: TextTower,
    spec: ExportSpec,
    outs: Mapping[str, str | Path | None],
    overwrite: bool = False,
    verify: bool = True,
    seed: int = 0,
    scorer: nn.Module | None = None,
    graphs: GraphBuilder | None = None,
) -> dict[str, Path]:
    """As :func:`export_bundle`, one bundle per flavour in ``outs`` ({flavour: directory or None for the
    default}), from one trace of each graph: the flavours differ only in the functions a graph carries, and
    tracing is most of an export's time (torch.export and its decompositions, about a minute for a small
    model), so ``--flavour both`` costs one export, not two. Each bundle is checked against PyTorch."""
    bad = [f for f in outs if f not in ("custom", "portable")]
    if bad or not outs:
        raise ValueError(f"flavour must be 'custom' or 'portable', got {bad[0] if bad else 'none'!r}")
    dirs = {fl: Path(o) if o else default_bundle_dir(spec.name, fl) for fl, o in outs.items()}
    if len({d.resolve() for d in dirs.values()}) < len(dirs):
        raise ValueError(f"each flavour needs its own directory, got {', '.join(f'{k}: {v}' for k, v in dirs.items())}")
    for out in dirs.values():
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    tokenizer, tokenizer_files = tokenizer_section(spec)
    for out in dirs.values():
        _check_writable(out)

    g = torch.Generator().manual_seed(seed)
    if scorer is None:
        scorer = Scorer()
    graphs = (graphs or stgt_graphs)(video_tower, text_tower, scorer, spec, g)
    meta_common = {
        "finsta.format": FORMAT,
        "finsta.format_version": str(FORMAT_VERSION),
        "finsta.family": spec.family,
        "finsta.exporter_version": __version__,
        "finsta.preprocess": json.dumps(spec.preprocess.to_dict()),
    }

    with contextlib.ExitStack() as stack:  # each bundle appears whole or not at all
        tmps = {fl: stack.enter_context(staged_dir(out, overwrite)) for fl, out in dirs.items()}
        used_ops: set[str] = set()
        for name, gs in graphs.items():
            log.info("exporting %s graph", name)
            traced = trace(gs.module, gs.args, gs.inputs, gs.outputs, gs.dynamic)
            used_ops |= {n.op_type for n in traced.graph.node if n.domain == OPS_DOMAIN}
            raw = traced.SerializeToString()  # finish() edits its model: each flavour gets its own copy
            for fl, tmp in tmps.items():
                proto = onnx.ModelProto.FromString(raw)
                meta = {**meta_common, "finsta.flavour": fl, "finsta.graph": name}
                if name == "text":
                    meta["finsta.tokenizer"] = json.dumps(tokenizer)
                finish(proto, fl, meta, tmp / f"{name}.onnx", gs.module)
        for fl, tmp in tmps.items():
            for name, src in tokenizer_files.items():
                shutil.copyfile(src, tmp / name)
            manifest = _manifest(spec, fl, tokenizer, used_ops, graphs, tmp, tokenizer_files)
            (tmp / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))
            if verify:
                verify_bundle(tmp, video_tower, text_tower, seed=seed + 1, scorer=scorer)
    for fl, out in dirs.items():
        log.info("wrote %s bundle %s", fl, out)
    return dirs


def _check_writable(out: Path) -> None:
    """An unwritable place fails before anything is traced."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(out.parent, os.W_OK):
            raise PermissionError(f"{out.parent} is not writable")
    except OSError as e:
        raise PermissionError(f"cannot write the bundle {out}: {out.parent} is not writable ({e.strerror or e})") from e


def _manifest(
    spec: ExportSpec,
    flavour: str,
    tokenizer: dict,
    used_ops: set[str],
    graphs: dict[str, GraphExport],
    tmp: Path,
    tokenizer_files: dict[str, Path],
) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": spec.name,
        "family": spec.family,
        "flavour": flavour,
        "exporter": {"name": "finsta-export", "version": __version__, "torch": str(torch.__version__), "opset": OPSET},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "preprocess": spec.preprocess.to_dict(),
        "tokenizer": tokenizer,
        "custom_ops": [
            {"domain": OPS_DOMAIN, "version": OPS_VERSION, "ops": sorted(used_ops), "required": flavour == "custom"}
        ],
        "graphs": {
            name: {"file": f"{name}.onnx", "inputs": gs.input_specs, "outputs": gs.output_specs}
            for name, gs in graphs.items()
        },
        "model": spec.model_config,
        "files": {f: sha256_file(tmp / f) for f in ("video.onnx", "text.onnx", "scorer.onnx", *tokenizer_files)},
    }


def cosine_rows(a, b) -> torch.Tensor:
    a, b = torch.as_tensor(a, dtype=torch.float64).flatten(1), torch.as_tensor(b, dtype=torch.float64).flatten(1)
    return torch.nn.functional.cosine_similarity(a, b, dim=1)


def verify_bundle(
    path: Path,
    video_tower: nn.Module,
    text_tower: nn.Module,
    seed: int = 1,
    min_cosine: float = 0.9999,
    max_score_diff: float = 1e-4,
    scorer: nn.Module | None = None,
) -> dict[str, float]:
    """Loads the bundle with finsta_rt (CPU) and compares every output of its three graphs with
    PyTorch on fresh random frames and texts: float outputs row by row by cosine, integer and
    boolean outputs exactly, scores by their largest absolute difference."""
    bundle = Bundle.load(path)
    model = Model(bundle, device="cpu")
    g = torch.Generator().manual_seed(seed)
    S, T = bundle.preprocess.size, bundle.preprocess.frames
    frames = torch.randint(0, 256, (3, T, S, S, 3), dtype=torch.uint8, generator=g)
    texts = ["a small red circle moves left", "then a large blue square appears past a small green triangle", "x"]
    video_inputs = [i.name for i in bundle.graphs["video"].inputs]
    user = {}
    if "slot_box" in video_inputs:  # family finsta: one video without a user graph, two with
        spec = {i.name: i for i in bundle.graphs["video"].inputs}
        box, mask, adj = example_user_graph(3, T, int(spec["slot_mask"].shape[2]), g)
        user = {"slot_box": box.numpy(), "slot_mask": mask.numpy(), "slot_adj": adj.numpy()}
    got_v = model.embed_frames(frames.numpy(), user_graph=user or None)
    got_t = model.embed_texts(texts)
    feed = {k: torch.from_numpy(v) for k, v in model.text_inputs(texts).items()}
    video_names = [o.name for o in bundle.graphs["video"].outputs]
    text_names = [o.name for o in bundle.graphs["text"].outputs]
    text_inputs = [i.name for i in bundle.graphs["text"].inputs]
    with torch.no_grad():
        v_in = {
            "frames": frames,
            **{k: torch.from_numpy(v) for k, v in model.video_inputs(frames.numpy(), user or None).items()},
        }
        ref_v = dict(zip(video_names, video_tower.eval()(*(v_in[k] for k in video_inputs))))
        out_t = text_tower.eval()(*(feed[k] for k in text_inputs))
        ref_t = dict(zip(text_names, out_t if isinstance(out_t, tuple) else (out_t,)))
        scorer = (scorer or Scorer()).eval()
        scorer_inputs = [i.name for i in bundle.graphs["scorer"].inputs]
        ref_s = scorer(*({**ref_v, **ref_t}[k] for k in scorer_inputs))
        ref_s = ref_s if isinstance(ref_s, tuple) else (ref_s,)
    got_s = model.score_parts(got_v, got_t)
    report: dict[str, float] = {}
    for name, ref in {**ref_v, **ref_t}.items():
        got = torch.from_numpy(np.asarray(got_v.get(name, got_t.get(name))))
        if ref.dtype.is_floating_point:
            report[f"{name}_cosine_min"] = float(cosine_rows(got, ref).min())
        else:
            report[f"{name}_mismatches"] = float((got != ref).sum())
    for o, ref in zip(bundle.graphs["scorer"].outputs, ref_s):
        report[f"{o.name}_max_abs_diff"] = float((torch.from_numpy(got_s[o.name]).double() - ref.double()).abs().max())
    bad = {
        k: v
        for k, v in report.items()
        if (k.endswith("_cosine_min") and v < min_cosine)
        or (k.endswith("_mismatches") and v > 0)
        or (k.endswith("_max_abs_diff") and v > max_score_diff)
    }
    if bad:
        raise ExportError(f"bundle {path} does not reproduce PyTorch: {bad} (all: {report})")
    log.info("bundle %s reproduces PyTorch: %s", path, report)
    return report
