"""Finsta (docs/families.md, Finsta): scene-graph structure plugged onto a frozen STGT host run.

The host's embeddings and the backbones' features are computed once; only the scene-graph
encoders, alignment heads and the gated fusion learn. Captions and their hard negatives are parsed
into text scene graphs once. The bundle's video graph takes an optional user graph (slot boxes,
mask, adjacency), the text graph the parsed text scene graph, and the scorer returns the total
and its parts."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from finsta_rt.scene_graph import encode_text_graphs

from ..export.bundle import ExportSpec, GraphExport, example_inputs, example_user_graph, io_specs
from ..export.run import ExportParts
from ..models.finsta import (
    SCORER_OUTPUTS,
    TEXT_INPUTS,
    TEXT_OUTPUTS,
    VIDEO_INPUTS,
    VIDEO_OUTPUTS,
    FinstaConfig,
    FinstaHeads,
    FinstaScorerTower,
    FinstaTextTower,
    FinstaVideoTower,
    TextGraphOutputs,
    VideoGraphOutputs,
)
from ..models.stgt import STGTHeads, similarity
from ..train.batching import feature_batch, hard_rows, itc_loss_masked, same_segment
from ..train.config import TrainConfig, check, check_model
from ..train.features import FeatureSet, build_backbones
from ..train.fit import CHECKPOINT, fit, read_checkpoint, save_checkpoint
from ..train.metrics import split_metrics, summary
from ..train.setup import TrainResult, backbones_and_features, start_run
from . import stgt
from .base import Family, RunPath, spec_for

log = logging.getLogger(__name__)

CONFIG_KEY = "finsta_config"
GRAPH_KEYS = ("node_span", "node_type", "adj", "edge_type", "pred_order")


def validate(cfg: TrainConfig, where: str) -> None:
    check(
        bool(cfg.host), where, "family 'finsta' needs host: the run directory of a trained STGT model (e.g. runs/stgt)"
    )
    check_model(where, FinstaConfig.from_dict, cfg.model)


@dataclass
class HostOutputs:
    """The frozen host's embeddings of one split: zv [N, Q, E], zt [N, 3, E] (caption, order-swapped,
    attribute-swapped) and the text graphs of the same texts ([N, 3, ...] each)."""

    zv: torch.Tensor
    zt: torch.Tensor
    graphs: dict[str, torch.Tensor]


@torch.no_grad()
def host_outputs(
    host: STGTHeads, fs: FeatureSet, tokenizer, max_nodes: int, parser: str, batch: int = 64
) -> HostOutputs:
    zv, zt = stgt.embed_split(host, fs, batch)
    flat = [t for row in fs.texts for t in row]
    S = fs.mask.shape[-1]
    g = encode_text_graphs(None, flat, tokenizer, max_nodes=max_nodes, max_length=S, parser=parser)
    graphs = {k: torch.from_numpy(g[k]).reshape(len(fs), 3, *g[k].shape[1:]) for k in GRAPH_KEYS}
    return HostOutputs(zv, zt, graphs)


def _texts(heads: FinstaHeads, text: torch.Tensor, graphs: dict[str, torch.Tensor], zt: torch.Tensor):
    """Flattens [B, K, ...] texts to B*K rows (video-major) and runs the text branch."""
    B, K = text.shape[:2]
    g = {k: v.reshape(B * K, *v.shape[2:]) for k, v in graphs.items()}
    return heads.text(
        text.reshape(B * K, *text.shape[2:]),
        g["node_span"],
        g["node_type"],
        g["adj"],
        g["edge_type"],
        g["pred_order"],
        zt.reshape(B * K, -1),
    )


@torch.no_grad()
def evaluate(heads: FinstaHeads, fs: FeatureSet, ho: HostOutputs, batch: int = 50) -> dict[str, float]:
    """Held-out recall and hard-negative accuracy on Finsta's total score."""
    heads.eval()
    videos, texts = [], []
    for i in range(0, len(fs), batch):
        idx = np.arange(i, min(len(fs), i + batch))
        tokens, text, _ = feature_batch(fs, idx)
        videos.append(heads.video(tokens, ho.zv[idx]))
        texts.append(_texts(heads, text, {k: v[idx] for k, v in ho.graphs.items()}, ho.zt[idx]))
    n = len(fs)
    v = VideoGraphOutputs(*(torch.cat([getattr(o, f.name) for o in videos]) for f in fields(VideoGraphOutputs)))
    t = TextGraphOutputs(*(torch.cat([getattr(o, f.name) for o in texts]) for f in fields(TextGraphOutputs)))
    total = heads.scorer(v, t)["total"].view(n, 3, n)  # [video's texts, 3, videos]
    heads.train()
    return split_metrics(fs, total[:, 0], total[torch.arange(n), :, torch.arange(n)])


def host_alone(fs: FeatureSet, ho: HostOutputs) -> dict[str, float]:
    """The frozen host's own held-out metrics (max over queries), as Finsta's are computed."""
    own = torch.stack([similarity(ho.zv[i : i + 1], ho.zt[i])[:, 0] for i in range(len(ho.zv))])  # [N, 3]
    return split_metrics(fs, similarity(ho.zv, ho.zt[:, 0]), own)


def finsta_config_for(cfg: TrainConfig, bb, host: STGTHeads) -> FinstaConfig:
    return FinstaConfig.from_dict(
        {
            **cfg.model,
            "backbone_dim": bb.frame.out_dim,
            "text_dim": bb.text.out_dim,
            "grid": tuple(bb.frame.grid),
            "frames": cfg.data.frames,
            "host_embed_dim": host.cfg.embed_dim,
        }
    )


def train(cfg: TrainConfig, resume: bool = True) -> TrainResult:
    o = cfg.optim
    start_run(cfg)
    host, host_cfg, _ = stgt.load_heads(cfg.host)
    host.requires_grad_(False)
    for key in ("frame_backbone", "text_backbone"):
        if getattr(host_cfg, key) != getattr(cfg, key):
            raise ValueError(
                f"{key} {getattr(cfg, key)!r} differs from the host run {cfg.host}'s "
                f"{getattr(host_cfg, key)!r}: Finsta reuses the host's backbones"
            )
    bb, train_fs, val_fs = backbones_and_features(cfg)
    fcfg = finsta_config_for(cfg, bb, host)
    t0 = time.monotonic()
    train_ho = host_outputs(host, train_fs, bb.tokenizer, fcfg.max_nodes, fcfg.parser)
    val_ho = host_outputs(host, val_fs, bb.tokenizer, fcfg.max_nodes, fcfg.parser)
    host_metrics = host_alone(val_fs, val_ho)  # the host alone, on the same videos
    log.info("host embeddings and text graphs in %.0f s; host alone: %s", time.monotonic() - t0, summary(host_metrics))

    heads = FinstaHeads(fcfg)

    def step(idx: np.ndarray, rng: np.random.Generator, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        return step_loss(heads, train_fs, train_ho, idx, fcfg, o.hard_negatives), {}

    fitted = fit(
        heads, cfg, len(train_fs), step, lambda: evaluate(heads, val_fs, val_ho), CONFIG_KEY, fcfg.to_dict(), resume
    )
    metrics = {**fitted.metrics, **{f"host_{k}": v for k, v in host_metrics.items()}}
    save_checkpoint(Path(cfg.output) / CHECKPOINT, heads, CONFIG_KEY, fcfg.to_dict(), cfg, fitted, metrics)
    return TrainResult(Path(cfg.output), metrics, fitted.seconds, fitted.epochs)


def step_loss(
    heads: FinstaHeads, fs: FeatureSet, ho: HostOutputs, idx: np.ndarray, fcfg: FinstaConfig, hard_negatives: bool
) -> torch.Tensor:
    """ITC on the total score and on each structural part (object-centred spatial, predicate-centred
    temporal, holistic), plus: each video prefers its caption over its order- and attribute-swapped
    versions under the total score."""
    idx = np.sort(idx)  # feature_batch's row order
    tokens, text, _ = feature_batch(fs, idx)
    B = len(idx)
    video = heads.video(tokens, ho.zv[idx])
    texts = _texts(heads, text, {k: v[idx] for k, v in ho.graphs.items()}, ho.zt[idx])
    parts = heads.scorer(video, texts)
    temp = heads.temperature
    cap = torch.arange(B) * 3
    same = same_segment(fs, idx)  # other captions of a row's segment are no negatives
    loss = itc_loss_masked(parts["total"][cap], temp, same)
    for name, on in (("spatial", fcfg.spatial), ("temporal", fcfg.temporal), ("holistic", True)):
        if on:
            loss = loss + 0.5 * itc_loss_masked(parts[name][cap], temp, same)
    hard = hard_rows(fs, idx)
    if hard_negatives and bool(hard.any()):  # only rows with real order/attribute-swapped captions
        H = int(hard.sum())
        own = parts["total"].view(B, 3, B)[torch.arange(B), :, torch.arange(B)][hard]  # [H, 3]
        loss = loss + F.cross_entropy(own / temp, torch.zeros(H, dtype=torch.long))
        if fcfg.temporal:  # order negatives differ only in time: the temporal part must see it
            t_own = parts["temporal"].view(B, 3, B)[torch.arange(B), :2, torch.arange(B)][hard]
            loss = loss + F.cross_entropy(t_own / temp, torch.zeros(H, dtype=torch.long))
    return loss


def load_finsta(run_or_ckpt: RunPath) -> tuple[FinstaHeads, TrainConfig, dict]:
    state, cfg = read_checkpoint(run_or_ckpt)
    heads = FinstaHeads(FinstaConfig.from_dict(state[CONFIG_KEY]))
    heads.load_state_dict(state["heads"])
    return heads.eval(), cfg, state.get("metrics", {})


# ----------------------------------------------------------------------------- export
EXAMPLE_TEXTS = [
    "first a small red circle moves left, then it disappears",
    "a large blue square moves up past a small green triangle",
    "x",
]


def finsta_text_feed(texts: list[str], tokenizer, max_nodes: int, parser: str) -> dict[str, torch.Tensor]:
    """The finsta text graph's inputs for ``texts``: finsta_rt's own feed, as tensors."""
    from finsta_rt.scene_graph import text_graph_feed

    return {k: torch.from_numpy(v) for k, v in text_graph_feed(texts, tokenizer, max_nodes, parser).items()}


def graphs(
    video_tower: nn.Module, text_tower: nn.Module, scorer: nn.Module, spec: ExportSpec, g: torch.Generator
) -> dict[str, GraphExport]:
    """T and the node count N are fixed by the model (the recurrent encoder unrolls over frames)."""
    from finsta_rt.tokenizer import WordPieceTokenizer

    S, T = spec.preprocess.size, spec.preprocess.frames
    finsta_cfg = spec.model_config["finsta"]
    N = int(finsta_cfg["max_nodes"])
    tok = WordPieceTokenizer.from_vocab_file(spec.vocab_file, lowercase=spec.lowercase, max_length=spec.max_length)
    frames = example_inputs(spec, g)[0]
    video_args = (frames, *example_user_graph(2, T, int(finsta_cfg["slots"]), g))
    feed = finsta_text_feed(EXAMPLE_TEXTS[:2], tok, N, str(finsta_cfg.get("parser", "rules")))
    text_args = tuple(feed[k] for k in TEXT_INPUTS)
    with torch.no_grad():
        v_out = video_tower.eval()(*video_args)
        t_out = text_tower.eval()(*text_args)
    scorer_in = (
        "video_embedding",
        "video_tracks",
        "video_frames",
        "video_graph",
        "text_embedding",
        "text_objects",
        "text_predicates",
        "text_object_mask",
        "text_pred_order",
        "text_graph",
    )
    named = {**dict(zip(VIDEO_OUTPUTS, v_out)), **dict(zip(TEXT_OUTPUTS, t_out))}
    B, Nv, Nt, Sq = (torch.export.Dim(n, min=1, max=4096) for n in ("B", "Nv", "Nt", "S"))

    def dims(t: torch.Tensor, lead: str) -> list:
        return [lead, *t.shape[1:]]

    text_dims = [["B", "S"], ["B", "S"], ["B", N, 2], ["B", N], ["B", N, N], ["B", N, N], ["B", N]]
    return {
        "video": GraphExport(
            video_tower,
            video_args,
            list(VIDEO_INPUTS),
            list(VIDEO_OUTPUTS),
            {k: {0: B} for k in VIDEO_INPUTS},
            io_specs(list(VIDEO_INPUTS), video_args, [["B", T, S, S, 3], *(dims(t, "B") for t in video_args[1:])]),
            io_specs(list(VIDEO_OUTPUTS), v_out, [dims(t, "B") for t in v_out]),
        ),
        "text": GraphExport(
            text_tower,
            text_args,
            list(TEXT_INPUTS),
            list(TEXT_OUTPUTS),
            {
                "input_ids": {0: B, 1: Sq},
                "attention_mask": {0: B, 1: Sq},
                "node_span": {0: B},
                "node_type": {0: B},
                "adj": {0: B},
                "edge_type": {0: B},
                "pred_order": {0: B},
            },
            io_specs(list(TEXT_INPUTS), text_args, text_dims),
            io_specs(list(TEXT_OUTPUTS), t_out, [dims(t, "B") for t in t_out]),
        ),
        "scorer": GraphExport(
            scorer,
            tuple(named[k] for k in scorer_in),
            list(scorer_in),
            list(SCORER_OUTPUTS),
            {k: {0: Nv if k.startswith("video") else Nt} for k in scorer_in},
            io_specs(
                list(scorer_in),
                [named[k] for k in scorer_in],
                [dims(named[k], "Nv" if k.startswith("video") else "Nt") for k in scorer_in],
            ),
            [{"name": n, "dtype": "float32", "shape": ["Nt", "Nv"]} for n in SCORER_OUTPUTS],
        ),
    }


def export_parts(run: RunPath) -> ExportParts:
    heads, cfg, metrics = load_finsta(run)
    host, _, host_metrics = stgt.load_heads(cfg.host)
    bb = build_backbones(cfg)
    spec = spec_for(
        cfg,
        bb,
        {
            "finsta": heads.cfg.to_dict(),
            "host": {"run": str(cfg.host), "stgt": host.cfg.to_dict(), "held_out_metrics": host_metrics},
            "frame_backbone": cfg.frame_backbone,
            "text_backbone": cfg.text_backbone,
            "held_out_metrics": metrics,
        },
    )
    return ExportParts(
        FinstaVideoTower(bb.encoder, host.video, heads.video).eval(),
        FinstaTextTower(bb.text, host.text, heads.text).eval(),
        spec,
        FinstaScorerTower(heads.scorer).eval(),
        graphs,
    )


FAMILY = Family("finsta", validate, train, load_finsta, export_parts)
