"""S-ViLM (docs/families.md, S-ViLM), trained on cached frozen-backbone features:

L = L_contrast + ground_weight * L_ground + temporal_weight * L_temporal

* L_contrast: symmetric InfoNCE between the clip and its caption;
* L_ground (inter-clip spatial grounding): the caption's noun phrases (finsta_rt.ground.noun_phrases,
  the same parser the runtime uses), each encoded by the text tower as its own short text, must
  score their clip's group tokens above those of the other clips of the batch (clips whose caption
  names the same phrase are not negatives);
* L_temporal (intra-clip temporal grouping): cut-and-paste, clip i takes frames [s, e) from another
  clip (half the time e = T: one cut, as finsta.data.cut_and_paste.cut_and_paste); every frame must be
  nearer the mean of its own scene than the other's. L_contrast and L_ground use the original clip.

Held-out metrics (all on videos of the val seed): retrieval R@1/R@5, grounding pointing accuracy
(the peak patch of a noun's heat map lies on the named object, with the random-map baseline), and
temporal grouping on cut-and-paste clips (the cut is the frame with the largest scene-change
score; frames put on the right side of the detected cut). After training, the scene-change
threshold is calibrated on training clips and stored in the model config.

The bundle's video graph also returns the group features, the per-patch group assignment and the
per-frame scene-change scores; its text graph returns the noun (grounding) embedding too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from finsta_rt.ground import heat_maps, noun_phrases, peak_patches

from ..data.cut_and_paste import cell_coverage, temporal_cuts
from ..data.synthetic import object_masks
from ..export.bundle import ExportSpec, GraphExport, example_inputs, io_specs
from ..export.run import ExportParts
from ..models.svilm import (
    TEXT_OUTPUTS,
    VIDEO_OUTPUTS,
    SViLMConfig,
    SViLMHeads,
    SViLMTextTower,
    SViLMVideoTower,
    contrastive_loss,
    grounding_loss,
    noun_contrast_loss,
    splice,
    temporal_grouping_loss,
)
from ..train.batching import encode_text_rows, feature_batch, itc_loss_masked, same_segment
from ..train.config import TrainConfig, check_model, data_parts
from ..train.features import Backbones, FeatureSet, build_backbones, synthetic_split
from ..train.fit import CHECKPOINT, fit, read_checkpoint, save_checkpoint
from ..train.metrics import split_metrics
from ..train.setup import TrainResult, backbones_and_features, start_run
from .base import Family, RunPath, spec_for

log = logging.getLogger(__name__)

CONFIG_KEY = "svilm_config"


def svilm_config_for(cfg: TrainConfig, bb: Backbones) -> SViLMConfig:
    model = {k: v for k, v in cfg.model.items() if k not in LOSS_KEYS}
    return SViLMConfig.from_dict(
        {
            **model,
            "backbone_dim": bb.frame.out_dim,
            "text_dim": bb.text.out_dim,
            "grid": tuple(bb.frame.grid),
            "frames": cfg.data.frames,
        }
    )


LOSS_KEYS = ("ground_weight", "temporal_weight", "noun_contrast_weight")


def loss_weights(cfg: TrainConfig) -> tuple[float, float, float]:
    """(ground, temporal, intra-clip noun contrast) weights; the last is our addition (default 0: the paper's losses)."""
    return (
        float(cfg.model.get("ground_weight", 1.0)),
        float(cfg.model.get("temporal_weight", 1.0)),
        float(cfg.model.get("noun_contrast_weight", 0.0)),
    )


def validate_model(model: dict) -> None:
    """The config's model section: SViLMConfig keys plus the loss weights (>= 0)."""
    for k in LOSS_KEYS:
        if k in model and not (isinstance(model[k], (int, float)) and not isinstance(model[k], bool) and model[k] >= 0):
            raise ValueError(f"{k} must be a number >= 0, got {model[k]!r}")
    SViLMConfig.from_dict({k: v for k, v in model.items() if k not in LOSS_KEYS})


def validate(cfg: TrainConfig, where: str) -> None:
    check_model(where, validate_model, cfg.model)


# ----------------------------------------------------------------------------- nouns
@dataclass
class NounTable:
    """The noun phrases of a split: unique phrases with frozen text-backbone features, and per clip
    the indices of its phrases."""

    phrases: list[str]
    features: torch.Tensor  # [U, S, Ct]
    mask: torch.Tensor  # [U, S]
    per_clip: list[list[int]]


@torch.no_grad()
def noun_table(fs: FeatureSet, bb: Backbones) -> NounTable:
    index: dict[str, int] = {}
    per_clip = []
    for row in fs.texts:
        per_clip.append([index.setdefault(p.lower(), len(index)) for p in noun_phrases(row[0])])
    phrases = list(index)
    ids, mask = bb.tokenizer(phrases)
    feats = [
        bb.text(torch.from_numpy(ids[i : i + 256]), torch.from_numpy(mask[i : i + 256]))[0]
        for i in range(0, len(phrases), 256)
    ]
    return NounTable(phrases, torch.cat(feats).float(), torch.from_numpy(mask), per_clip)


def _batch_nouns(
    table: NounTable, idx: np.ndarray, same: torch.Tensor | None = None
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unique phrases of the batch, owner clip of each (noun, clip) pair and the same-phrase mask
    (``same`` [B, B]: rows showing one segment; a phrase of one is no negative for the others)."""
    pairs = [(u, b) for b, i in enumerate(idx) for u in table.per_clip[i]]
    uniq = np.array(sorted({u for u, _ in pairs}), dtype=np.int64)
    where = {u: k for k, u in enumerate(uniq)}
    rows = torch.tensor([where[u] for u, _ in pairs])
    owner = torch.tensor([b for _, b in pairs])
    has = torch.zeros(len(uniq), len(idx), dtype=torch.bool)
    for u, b in pairs:
        has[where[u], b] = True
    if same is not None:
        has = (has.float() @ same.float()) > 0
    return uniq, rows, owner, has[rows]


def splice_partners(video: np.ndarray, rng: np.random.Generator, H: int) -> np.ndarray | None:
    """Partners (batch positions) of the first H clips for cut-and-paste: another clip of the batch, of
    another video (a clip spliced with its own video shows no cut); None when the batch has one video."""
    B = len(video)
    partner = (np.arange(H) + rng.integers(1, B, size=H)) % B
    clash = np.flatnonzero(video[partner] == video[:H])
    for i in clash:  # only caption rows can clash (synthetic rows are one video each): redraw
        others = np.flatnonzero(video != video[i])
        if not len(others):
            return None
        partner[i] = rng.choice(others)
    return partner


# ----------------------------------------------------------------------------- losses per step
def step_loss(
    heads: SViLMHeads,
    tokens: torch.Tensor,
    text: torch.Tensor,
    mask: torch.Tensor,
    table: NounTable,
    idx: np.ndarray,
    rng: np.random.Generator,
    weights: tuple[float, ...],
    same: torch.Tensor | None = None,
    video: np.ndarray | None = None,
) -> tuple[torch.Tensor, dict]:
    """The loss of a batch; ``same`` [B, B] marks rows of one segment (no negatives of each other),
    ``video`` [B] the rows' video ids (splice partners come from other videos)."""
    B, T = tokens.shape[:2]
    cfg = heads.cfg
    temp = heads.temperature
    zv, _, groups, *_ = heads.video(tokens)
    zt, _ = heads.text(text, mask)
    l_c = contrastive_loss(zv[:, 0], zt, temp) if same is None else itc_loss_masked(zt @ zv[:, 0].t(), temp, same)
    parts = {"contrast": float(l_c.detach())}
    loss = l_c
    if weights[0] > 0:
        uniq, rows, owner, named = _batch_nouns(table, idx, same)
        _, nouns = heads.text(table.features[uniq], table.mask[uniq])
        l_g = grounding_loss(nouns[rows], owner, named, groups, cfg.ground_tau, temp)
        loss = loss + weights[0] * l_g
        parts["ground"] = float(l_g.detach())
        if len(weights) > 2 and weights[2] > 0:
            l_n = noun_contrast_loss(nouns[rows], owner, groups, cfg.ground_tau, temp)
            loss = loss + weights[2] * l_n
            parts["noun_contrast"] = float(l_n.detach())
    if weights[1] > 0 and T >= 2:
        # half the batch is spliced (with partners from the whole batch): the loss needs no more, and
        # the second forward pass is the costliest part of a step
        H = max(1, B // 2)
        partner = splice_partners(np.arange(B) if video is None else video, rng, H)
        if partner is not None:
            start = rng.integers(1, T, size=H)
            end = np.where(rng.random(H) < 0.5, T, [rng.integers(s + 1, T + 1) for s in start])
            spliced, y = splice(tokens, torch.from_numpy(partner), torch.from_numpy(start), torch.from_numpy(end))
            frames = heads.video(spliced)[5]
            l_t = temporal_grouping_loss(frames, y, temp)
            loss = loss + weights[1] * l_t
            parts["temporal"] = float(l_t.detach())
    return loss, parts


# ----------------------------------------------------------------------------- evaluation
@dataclass
class GroundTruth:
    """Held-out grounding targets: per clip, (noun text, object cell coverage [T, h, w]) for every
    object the caption names (coverage = fraction of each patch cell's pixels on the object)."""

    nouns: list[list[str]]
    coverage: list[list[np.ndarray]]
    offset: int = 0  # the held-out set's row of clip 0 (the synthetic part's start)


def ground_truth(
    cfg: TrainConfig, split: str, grid: tuple[int, int], n: int | None = None, offset: int = 0
) -> GroundTruth | None:
    """The synthetic part's grounding targets (None: the data has no synthetic part, so no object masks).
    ``offset``: where that part's rows start in the split's FeatureSet."""
    part = next((d for d in data_parts(cfg.data) if d.kind == "synthetic"), None)
    if part is None:
        return None
    data = synthetic_split(part, split)
    nouns, cover = [], []
    for i in range(len(data) if n is None else min(n, len(data))):
        v = data[i]
        labels = object_masks(v)
        seen: dict[int, str] = {}
        for m in v.mentions:
            seen.setdefault(m.object_id, m.text)
        nouns.append(list(seen.values()))
        cover.append([cell_coverage(labels, oid, grid) for oid in seen])
    return GroundTruth(nouns, cover, offset)


def pointing(
    heat: np.ndarray,
    assignment: np.ndarray,
    probs: np.ndarray,
    coverage: list[np.ndarray],
    min_cover: float = 0.0,
    peaks: np.ndarray | None = None,
) -> tuple[list[float], list[float]]:
    """Per (noun, visible frame): hit = the peak patch's cell has > min_cover of its pixels on the
    object; and the random-map baseline = the chance that a uniformly random patch does.
    ``peaks``: peak_patches(heat, assignment, probs) when the caller has them already."""
    peaks = peak_patches(heat, assignment, probs) if peaks is None else peaks
    hits, chance = [], []
    for k, cov in enumerate(coverage):
        flat = cov.reshape(cov.shape[0], -1)
        for t in range(flat.shape[0]):
            if flat[t].max() <= 0:  # the object is invisible in this frame
                continue
            hits.append(float(flat[t, peaks[k, t]] > min_cover))
            chance.append(float((flat[t] > min_cover).mean()))
    return hits, chance


def temporal_metrics(change_spliced: np.ndarray, cuts: np.ndarray) -> dict[str, float]:
    """change [N, T] scene-change scores of cut clips -> cut found (argmax) and frame grouping accuracy."""
    T = change_spliced.shape[1]
    found = change_spliced[:, 1:].argmax(axis=1) + 1
    t = np.arange(T)[None]
    frame_acc = ((t >= found[:, None]) == (t >= cuts[:, None])).mean()
    return {"cut_acc": float((found == cuts).mean()), "cut_chance": 1.0 / (T - 1), "frame_group_acc": float(frame_acc)}


def best_threshold(cut_scores: np.ndarray, other_scores: np.ndarray) -> float:
    """The threshold that best separates scores of cut transitions from the others (max F1)."""
    vals = np.unique(np.concatenate([cut_scores, other_scores]))
    cands = (vals[:-1] + vals[1:]) / 2 if len(vals) > 1 else vals
    best, best_f1 = float(cands[0]), -1.0
    for c in cands:
        tp = float((cut_scores > c).sum())
        fp = float((other_scores > c).sum())
        f1 = 2 * tp / (2 * tp + fp + (len(cut_scores) - tp))
        if f1 > best_f1:
            best, best_f1 = float(c), f1
    return best


@torch.no_grad()
def _scene_change(
    heads: SViLMHeads, n: int, tokens_of: Callable[[int, int], np.ndarray], batch: int = 50
) -> np.ndarray:
    """The video tower's per-frame scene-change scores [n, T]; ``tokens_of(lo, hi)`` gives the
    tokens [hi - lo, T, 1 + P, C] of videos lo..hi-1, taken ``batch`` videos at a time."""
    return np.concatenate(
        [
            heads.video(torch.as_tensor(np.asarray(tokens_of(i, min(n, i + batch)), dtype=np.float32)))[6].numpy()
            for i in range(0, n, batch)
        ]
    )


def cut_pairs(fs: FeatureSet, seed: int, n: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed cut-and-paste clips of a split: (rows, partner rows, cuts), one clip per segment (the first
    ``n``), its partner of another video. On synthetic data: temporal_cuts of rows 0..n-1 as they are."""
    _, rows = np.unique(fs.segment, return_index=True)
    rows = np.sort(rows)[:n]
    partner, cuts = temporal_cuts(len(rows), fs.tokens.shape[1], seed=seed)
    vid = fs.video[rows]
    clash = np.flatnonzero(vid[partner] == vid)
    rng = np.random.default_rng(seed + 1)
    for i in clash:
        others = np.flatnonzero(vid != vid[i])
        if len(others):
            partner[i] = rng.choice(others)
    return rows, rows[partner], cuts


def spliced_tokens(fs: FeatureSet, rows: np.ndarray, partner: np.ndarray, cuts: np.ndarray, lo: int, hi: int):
    """Tokens [hi - lo, T, 1 + P, C] of clips rows[lo:hi], frames from cuts[i] on taken from partner[i]."""
    a = np.stack([np.asarray(fs.tokens[j], dtype=np.float32) for j in rows[lo:hi]])
    b = np.stack([np.asarray(fs.tokens[j], dtype=np.float32) for j in partner[lo:hi]])
    T = a.shape[1]
    keep = np.arange(T)[None, :] < cuts[lo:hi, None]
    return np.where(keep[:, :, None, None], a, b)


@torch.no_grad()
def evaluate(
    heads: SViLMHeads, fs: FeatureSet, table: NounTable, truth: GroundTruth | None, batch: int = 50
) -> dict[str, float]:
    heads.eval()
    n = len(fs)
    zv, assign, probs, groups = [], [], [], []
    zt = []
    for i in range(0, n, batch):
        idx = np.arange(i, min(n, i + batch))
        tokens, text, mask = feature_batch(fs, idx)
        o = heads.video(tokens)
        zv.append(o[1])
        groups.append(o[2].numpy())
        assign.append(o[3].numpy())
        probs.append(o[4].numpy())
        zt.append(encode_text_rows(lambda f, m: heads.text(f, m)[0], text, mask))
    zv, zt = torch.cat(zv), torch.cat(zt)  # [N, E], [N, 3, E]: caption, order-swapped, attribute-swapped
    m = split_metrics(fs, zt[:, 0] @ zv.t(), torch.einsum("nke,ne->nk", zt, zv))
    groups, assign, probs = np.concatenate(groups), np.concatenate(assign), np.concatenate(probs)
    if truth is not None:
        noun_text = sorted({t for row in truth.nouns for t in row})
        feats = {p: k for k, p in enumerate(table.phrases)}
        missing = [p for p in noun_text if p.lower() not in feats]
        if missing:
            raise RuntimeError(f"held-out nouns {missing[:3]} are not in the noun table")
        rows = [feats[p.lower()] for p in noun_text]
        _, nemb = heads.text(table.features[rows], table.mask[rows])
        nemb = {p: nemb[k].numpy() for k, p in enumerate(noun_text)}
        hits, chance, hits50, chance50 = [], [], [], []
        for i in range(len(truth.nouns)):
            r = truth.offset + i
            heat = heat_maps(np.stack([nemb[p] for p in truth.nouns[i]]), groups[r], assign[r])
            peaks = peak_patches(heat, assign[r], probs[r])
            h, c = pointing(heat, assign[r], probs[r], truth.coverage[i], peaks=peaks)
            h5, c5 = pointing(heat, assign[r], probs[r], truth.coverage[i], 0.5, peaks=peaks)
            hits += h
            chance += c
            hits50 += h5
            chance50 += c5
        m.update(
            {
                "ground_acc": float(np.mean(hits)),
                "ground_random": float(np.mean(chance)),
                "ground_acc50": float(np.mean(hits50)),
                "ground_random50": float(np.mean(chance50)),
                "ground_n": float(len(hits)),
            }
        )
    rows, partner, cuts = cut_pairs(fs, seed=7)
    change = _scene_change(heads, len(rows), lambda lo, hi: spliced_tokens(fs, rows, partner, cuts, lo, hi), batch)
    m.update(temporal_metrics(change, cuts))
    heads.train()
    return m


@torch.no_grad()
def calibrate_threshold(heads: SViLMHeads, fs: FeatureSet, n: int = 200) -> float:
    """Scene-change threshold from training clips: half spliced at a random cut, scores of the cut
    transitions against all other transitions (of spliced and intact clips)."""
    heads.eval()
    rows, partner, cuts = cut_pairs(fs, seed=11, n=n)
    n = len(rows)
    spliced = _scene_change(heads, n, lambda lo, hi: spliced_tokens(fs, rows, partner, cuts, lo, hi))
    intact = _scene_change(heads, n, lambda lo, hi: fs.tokens[rows[lo:hi]])
    T = spliced.shape[1]
    is_cut = np.arange(T)[None] == cuts[:, None]
    cut_scores = spliced[is_cut]
    others = np.concatenate([spliced[:, 1:][~is_cut[:, 1:]], intact[:, 1:].ravel()])
    heads.train()
    return best_threshold(cut_scores, others)


# ----------------------------------------------------------------------------- training
def train(cfg: TrainConfig, resume: bool = True) -> TrainResult:
    start_run(cfg)
    bb, train_fs, val_fs = backbones_and_features(cfg)
    scfg = svilm_config_for(cfg, bb)
    weights = loss_weights(cfg)
    t0 = time.monotonic()
    train_nouns, val_nouns = noun_table(train_fs, bb), noun_table(val_fs, bb)
    synthetic = next((p for p in val_fs.parts if p.kind == "synthetic"), None)
    truth = None if synthetic is None else ground_truth(cfg, "val", scfg.grid, offset=synthetic.start)
    log.info(
        "noun phrases (%d train, %d val unique) and %s in %.0f s",
        len(train_nouns.phrases),
        len(val_nouns.phrases),
        "no held-out object masks (no synthetic part)" if truth is None else "held-out object masks",
        time.monotonic() - t0,
    )

    heads = SViLMHeads(scfg)

    def step(idx: np.ndarray, rng: np.random.Generator, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        tokens, text, mask = feature_batch(train_fs, idx)
        same, video = same_segment(train_fs, idx), train_fs.video[np.sort(idx)]
        return step_loss(heads, tokens, text[:, 0], mask[:, 0], train_nouns, idx, rng, weights, same, video)

    fitted = fit(
        heads,
        cfg,
        len(train_fs),
        step,
        lambda: evaluate(heads, val_fs, val_nouns, truth),
        CONFIG_KEY,
        scfg.to_dict(),
        resume,
        summary=lambda m: (
            f"R@1 {m['r1']:.3f}"
            + (f" ground {m['ground_acc']:.3f} (random {m['ground_random']:.3f})" if "ground_acc" in m else "")
            + f" cut {m['cut_acc']:.3f}"
        ),
    )
    metrics = dict(fitted.metrics)
    heads.cfg.scene_threshold = float(np.clip(calibrate_threshold(heads, train_fs), 0.0, 2.0))
    metrics["scene_threshold"] = heads.cfg.scene_threshold
    log.info("scene-change threshold calibrated on training clips: %.4f", heads.cfg.scene_threshold)
    save_checkpoint(Path(cfg.output) / CHECKPOINT, heads, CONFIG_KEY, heads.cfg.to_dict(), cfg, fitted, metrics)
    return TrainResult(Path(cfg.output), metrics, fitted.seconds, fitted.epochs)


def load_svilm(run_or_ckpt: RunPath) -> tuple[SViLMHeads, TrainConfig, dict]:
    state, cfg = read_checkpoint(run_or_ckpt)
    heads = SViLMHeads(SViLMConfig.from_dict(state[CONFIG_KEY]))
    heads.load_state_dict(state["heads"])
    return heads.eval(), cfg, state.get("metrics", {})


# ----------------------------------------------------------------------------- export
def graphs(
    video_tower: nn.Module, text_tower: nn.Module, scorer: nn.Module, spec: ExportSpec, g: torch.Generator
) -> dict[str, GraphExport]:
    """The video graph also returns group features, the per-patch group assignment (and its
    softmax), per-frame features and scene-change scores; the text graph returns text_embedding and
    noun_embedding (the grounding space); the scorer is the max-over-queries one (Q = 1)."""
    S = spec.preprocess.size
    frames, ids, mask = example_inputs(spec, g)
    with torch.no_grad():
        v_out = video_tower.eval()(frames)
        t_out = text_tower.eval()(ids, mask)
    B, Nv, Nt, Sq = (torch.export.Dim(n, min=1, max=4096) for n in ("B", "Nv", "Nt", "S"))
    Tdyn = torch.export.Dim("T", min=2, max=512)
    named = dict(zip(VIDEO_OUTPUTS, v_out))
    zv, zt = named["video_embedding"], t_out[0]
    E, G, P = zv.shape[2], named["group_features"].shape[1], named["group_assignment"].shape[2]
    v_dims = [["B", 1, E], ["B", E], ["B", G, E], ["B", "T", P], ["B", "T", P, G], ["B", "T", E], ["B", "T"]]
    return {
        "video": GraphExport(
            video_tower,
            (frames,),
            ["frames"],
            list(VIDEO_OUTPUTS),
            {"frames": {0: B, 1: Tdyn}},
            io_specs(["frames"], [frames], [["B", "T", S, S, 3]]),
            io_specs(list(VIDEO_OUTPUTS), v_out, v_dims),
        ),
        "text": GraphExport(
            text_tower,
            (ids, mask),
            ["input_ids", "attention_mask"],
            list(TEXT_OUTPUTS),
            {"input_ids": {0: B, 1: Sq}, "attention_mask": {0: B, 1: Sq}},
            io_specs(["input_ids", "attention_mask"], [ids, mask], [["B", "S"], ["B", "S"]]),
            io_specs(list(TEXT_OUTPUTS), t_out, [["B", E], ["B", E]]),
        ),
        "scorer": GraphExport(
            scorer,
            (zv, zt),
            ["video_embedding", "text_embedding"],
            ["scores"],
            {"video_embedding": {0: Nv}, "text_embedding": {0: Nt}},
            io_specs(["video_embedding", "text_embedding"], [zv, zt], [["Nv", 1, E], ["Nt", E]]),
            [{"name": "scores", "dtype": "float32", "shape": ["Nt", "Nv"]}],
        ),
    }


def export_parts(run: RunPath) -> ExportParts:
    heads, cfg, metrics = load_svilm(run)
    bb = build_backbones(cfg)
    spec = spec_for(
        cfg,
        bb,
        {
            "svilm": heads.cfg.to_dict(),
            "frame_backbone": cfg.frame_backbone,
            "text_backbone": cfg.text_backbone,
            "held_out_metrics": metrics,
        },
    )
    return ExportParts(
        SViLMVideoTower(bb.encoder, heads.video).eval(), SViLMTextTower(bb.text, heads.text).eval(), spec, None, graphs
    )


FAMILY = Family("svilm", validate, train, load_svilm, export_parts)
