"""Finsta's modules against independent numpy float64 computations: slots from group tokens, the
spatial-temporal adjacency, the alignment scores, the fusion's starting point, text-node pooling,
and the training config of the family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finsta.families import parse_config
from finsta.models.finsta import (
    FinstaConfig,
    FinstaScorer,
    GatedFusion,
    GaussianDiffGraphTransformer,
    TextGraphOutputs,
    TextGraphTransformer,
    VideoGraphOutputs,
    VideoSceneGraph,
)
from finsta.train.config import ConfigError


@pytest.fixture(autouse=True)
def _float64():
    """float64 throughout: the references are float64 numpy."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def small_cfg(**kw) -> FinstaConfig:
    base = dict(backbone_dim=24, text_dim=20, grid=(3, 4), frames=5, host_embed_dim=12, dim=16, heads=4, slots=3)
    return FinstaConfig(**{**base, **kw})


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("seed", range(5))
def test_slots_are_assignment_weighted_means(seed):
    torch.manual_seed(seed)
    cfg = small_cfg()
    dsg = VideoSceneGraph(cfg).double()
    B, T, P = 2, cfg.frames, 12
    tokens = torch.randn(B, T, 1 + P, cfg.backbone_dim)
    slots, pos, rel, assign = dsg(tokens)
    x = (dsg.input_proj(tokens[:, :, 1:]) + dsg.pos_embed).detach().numpy()
    a = assign.detach().numpy()
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-12)  # each patch is shared out completely
    want = np.einsum("btpk,btpd->btkd", a, x) / a.sum(2)[..., None]
    np.testing.assert_allclose(slots.detach().numpy(), want, atol=1e-10)
    h, w = cfg.grid
    coords = np.array([[(c + 0.5) / w, (r + 0.5) / h] for r in range(h) for c in range(w)])
    want_pos = np.einsum("btpk,pc->btkc", a, coords) / a.sum(2)[..., None]
    np.testing.assert_allclose(pos.detach().numpy(), want_pos, atol=1e-10)
    assert rel.shape == (B, T, cfg.slots, cfg.slots, cfg.dim)


@pytest.mark.parametrize("T,K", [(1, 1), (1, 4), (5, 3), (8, 4)])
def test_spatial_temporal_adjacency(T, K):
    adj = GaussianDiffGraphTransformer.adjacency(T, K, torch.device("cpu")).numpy()
    for i in range(T * K):
        for j in range(T * K):
            ti, ki, tj, kj = i // K, i % K, j // K, j % K
            want = ti == tj or (ki == kj and abs(ti - tj) == 1)
            assert adj[i, j] == want, (i, j)
    assert adj.diagonal().all()  # the custom op needs self-loops


def random_outputs(rng, Nt: int, Nv: int, N: int, K: int, T: int, E: int):
    types = rng.integers(0, 4, (Nt, N))
    order = np.full((Nt, N), -1)
    for t in range(Nt):
        preds = np.flatnonzero(types[t] == 3)
        order[t, preds] = rng.permutation(len(preds))
    text = TextGraphOutputs(
        objects=torch.from_numpy(unit(rng.standard_normal((Nt, N, E)))),
        predicates=torch.from_numpy(unit(rng.standard_normal((Nt, N, E)))),
        object_mask=torch.from_numpy(types == 1),
        pred_order=torch.from_numpy(order),
        graph=torch.from_numpy(unit(rng.standard_normal((Nt, E)))),
        fused=torch.from_numpy(unit(rng.standard_normal((Nt, 7)))),
    )
    video = VideoGraphOutputs(
        tracks=torch.from_numpy(unit(rng.standard_normal((Nv, K, E)))),
        frames=torch.from_numpy(unit(rng.standard_normal((Nv, T, E)))),
        graph=torch.from_numpy(unit(rng.standard_normal((Nv, E)))),
        fused=torch.from_numpy(unit(rng.standard_normal((Nv, 3, 7)))),
        assign=torch.zeros(1),
    )
    return text, video


def reference_scores(text, video, tau: float, gain: float, w: np.ndarray) -> dict[str, np.ndarray]:
    """The scores of models/finsta.py's docstring, pair by pair, in plain numpy loops."""
    t_obj, t_pred = text.objects.numpy(), text.predicates.numpy()
    omask, order = text.object_mask.numpy(), text.pred_order.numpy()
    tracks, frames = video.tracks.numpy(), video.frames.numpy()
    Nt, Nv, T = t_obj.shape[0], tracks.shape[0], frames.shape[1]
    out = {k: np.zeros((Nt, Nv)) for k in ("global", "spatial", "temporal", "holistic")}
    times = np.linspace(0, 1, T)
    for i in range(Nt):
        for j in range(Nv):
            out["global"][i, j] = max(video.fused.numpy()[j] @ text.fused.numpy()[i])
            objs = np.flatnonzero(omask[i])
            out["spatial"][i, j] = np.mean([max(tracks[j] @ t_obj[i, a]) for a in objs]) if len(objs) else 0.0
            preds = np.flatnonzero(order[i] >= 0)
            content, when = [], {}
            for c in preds:
                s = frames[j] @ t_pred[i, c]
                att = np.exp(s / tau - np.max(s / tau))
                att /= att.sum()
                content.append(att @ s)
                when[order[i, c]] = att @ times
            pairs = [np.tanh(gain * (when[o + 1] - when[o])) for o in range(len(preds) - 1)]
            out["temporal"][i, j] = 0.5 * ((np.mean(content) if content else 0.0) + (np.mean(pairs) if pairs else 0.0))
            out["holistic"][i, j] = text.graph.numpy()[i] @ video.graph.numpy()[j]
    out["total"] = out["global"] + w[0] * out["spatial"] + w[1] * out["temporal"] + w[2] * out["holistic"]
    return out


@pytest.mark.parametrize("seed", range(8))
def test_scores_match_reference(seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    text, video = random_outputs(
        rng,
        Nt=int(rng.integers(1, 5)),
        Nv=int(rng.integers(1, 5)),
        N=int(rng.integers(1, 9)),
        K=int(rng.integers(1, 5)),
        T=int(rng.integers(2, 9)),
        E=6,
    )
    scorer = FinstaScorer(small_cfg()).double()
    with torch.no_grad():
        scorer.weights_raw.copy_(torch.from_numpy(rng.standard_normal(3)))
        scorer.log_tau.fill_(np.log(rng.uniform(0.05, 1.0)))
    got = {k: v.detach().numpy() for k, v in scorer(video, text).items()}
    w = np.log1p(np.exp(scorer.weights_raw.detach().numpy()))
    want = reference_scores(text, video, float(scorer.log_tau.detach().exp()), scorer.order_gain, w)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-10, err_msg=k)


def test_temporal_score_sees_the_order_of_predicates():
    """Two predicates that match an early and a late frame: told in that order the order term is
    positive, told the other way round it is negative by the same amount."""
    E, T = 4, 8
    frames = np.zeros((1, T, E))
    frames[0, :, 0] = 1.0
    frames[0, 1] = [0, 1, 0, 0]  # the first event happens at frame 1
    frames[0, 6] = [0, 0, 1, 0]  # the second at frame 6
    preds = np.zeros((1, 3, E))
    preds[0, 0] = [0, 1, 0, 0]
    preds[0, 1] = [0, 0, 1, 0]
    preds[0, 2] = [1, 0, 0, 0]  # an object node (not a predicate)
    scorer = FinstaScorer(small_cfg(frames=T)).double()
    with torch.no_grad():
        scorer.log_tau.fill_(np.log(0.02))

    def score(order):
        text = TextGraphOutputs(
            torch.from_numpy(preds),
            torch.from_numpy(preds),
            torch.tensor([[False, False, True]]),
            torch.tensor([order]),
            torch.zeros(1, 2),
            torch.zeros(1, 2),
        )
        video = VideoGraphOutputs(
            torch.zeros(1, 1, E), torch.from_numpy(frames), torch.zeros(1, 2), torch.zeros(1, 1, 2), torch.zeros(1)
        )
        return float(scorer.temporal(video, text).detach())

    told, swapped = score([0, 1, -1]), score([1, 0, -1])
    # the order term is +tanh(gain * 5/7) and -tanh(gain * 5/7); the score takes half of it
    assert told - swapped == pytest.approx(np.tanh(scorer.order_gain * 5 / 7), abs=1e-6)
    assert told > 0.9


def test_fusion_starts_as_the_host():
    torch.manual_seed(0)
    fusion = GatedFusion(12, 16).double()
    host = torch.randn(3, 5, 12)
    g = torch.randn(3, 16)
    np.testing.assert_allclose(fusion(host, g).detach().numpy(), unit(host.numpy()), atol=1e-12)
    assert fusion(host[:, 0], g).shape == (3, 12)


def test_text_nodes_start_as_span_means():
    torch.manual_seed(1)
    cfg = small_cfg()
    gt = TextGraphTransformer(cfg).double()
    gt.layers = torch.nn.ModuleList()  # look at the node initialisation alone
    feats = torch.randn(2, 9, cfg.text_dim)
    span = torch.tensor([[[1, 3], [3, 4], [0, 1]], [[2, 7], [7, 9], [0, 1]]])
    types = torch.tensor([[1, 3, 0], [2, 1, 0]])
    order = torch.tensor([[-1, 0, -1], [-1, -1, -1]])
    adj = torch.ones(2, 3, 3, dtype=torch.bool)
    h = gt(feats, span, types, adj, torch.ones(2, 3, 3, dtype=torch.long), order).detach().numpy()
    x = gt.input_proj(feats).detach().numpy()
    for b in range(2):
        for n in range(3):
            s, e = span[b, n].tolist()
            want = x[b, s:e].mean(0) + gt.node_type.weight[types[b, n]].detach().numpy()
            if order[b, n] >= 0:  # the one predicate: relative order 0 / 1
                want = want + gt.order(torch.zeros(1)).detach().numpy()
            np.testing.assert_allclose(h[b, n], want, atol=1e-10)


def test_finsta_training_config():
    base = {"family": "finsta", "name": "f", "host": "runs/stgt", "output": "runs/f"}
    cfg = parse_config({**base, "model": {"slots": 6, "gaussian_diff": False}}, "f.yaml")
    assert cfg.family == "finsta" and cfg.model["slots"] == 6
    with pytest.raises(ConfigError, match="f.yaml.*needs host"):
        parse_config({k: v for k, v in base.items() if k != "host"}, "f.yaml")
    with pytest.raises(ConfigError, match="f.yaml: model: .*unknown Finsta config keys \\['slot'\\]"):
        parse_config({**base, "model": {"slot": 6}}, "f.yaml")
    with pytest.raises(ConfigError, match="dim=30 must be divisible by heads=4"):
        parse_config({**base, "model": {"dim": 30, "heads": 4}}, "f.yaml")
