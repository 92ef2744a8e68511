"""S-ViLM modules and losses against independent numpy float64 references, on fresh random inputs;
the held-out metrics' helpers on cases worked out by hand; config validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from finsta.families.svilm import (
    best_threshold,
    cell_coverage,
    pointing,
    temporal_cuts,
    temporal_metrics,
    validate_model,
)
from finsta.models.svilm import (
    GroupingBlock,
    SViLMConfig,
    SViLMHeads,
    contrastive_loss,
    grounding_loss,
    grounding_scores,
    splice,
    temporal_grouping_loss,
)


def f64(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def np_layer_norm(x, ln):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + ln.eps) * f64(ln.weight) + f64(ln.bias)


def np_linear(x, lin):
    return x @ f64(lin.weight).T + f64(lin.bias)


def np_mlp(x, mlp):
    h = np_linear(x, mlp[0])
    h = h / (1 + np.exp(-1.702 * h))  # QuickGELU
    return np_linear(h, mlp[2])


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_grouping_block_inference_matches_numpy():
    torch.manual_seed(1)
    blk = GroupingBlock(16, 5, tau=1.0).eval()
    g, z = torch.randn(3, 5, 16), torch.randn(3, 40, 16)
    with torch.no_grad():
        g_new, logits, idx = blk(g, z)
    G, Z = f64(g), f64(z)
    zn = np_layer_norm(Z, blk.ln_z)
    want_logits = np_linear(np_layer_norm(G, blk.ln_g), blk.q) @ np_linear(zn, blk.k).transpose(0, 2, 1) / 4.0
    want_idx = want_logits.argmax(1)
    hard = (want_idx[:, None, :] == np.arange(5)[None, :, None]).astype(np.float64)
    agg = hard @ np_linear(zn, blk.v) / (hard.sum(-1, keepdims=True) + 1e-6)
    want = G + np_linear(agg, blk.o)
    want = want + np_mlp(np_layer_norm(want, blk.ln_mlp), blk.mlp)
    np.testing.assert_allclose(f64(logits), want_logits, atol=1e-4)
    assert np.array_equal(idx.numpy(), want_idx)
    np.testing.assert_allclose(f64(g_new), want, atol=1e-4)


def test_grouping_block_training_is_hard_forward_with_straight_through_gradient():
    """Training: the forward value uses the one-hot of the Gumbel argmax (so the group update equals
    the hard aggregation of the returned indices), yet q and k receive gradient (straight-through)."""
    torch.manual_seed(2)
    blk = GroupingBlock(16, 4, tau=0.5).train()
    g, z = torch.randn(2, 4, 16), torch.randn(2, 30, 16)
    g_new, logits, idx = blk(g, z)
    with torch.no_grad():
        zn = blk.ln_z(z)
        hard = (idx[:, None, :] == torch.arange(4)[None, :, None]).double()
        agg = hard @ blk.v(zn).double() / (hard.sum(-1, keepdim=True) + 1e-6)
        want = g.double() + blk.o(agg.float()).double()
        want = want + blk.mlp(blk.ln_mlp(want.float())).double()
    np.testing.assert_allclose(f64(g_new), f64(want), atol=1e-4)
    g_new.sum().backward()
    assert blk.q.weight.grad is not None and blk.q.weight.grad.abs().sum() > 0
    assert blk.k.weight.grad.abs().sum() > 0
    # Gumbel noise: training assignments differ from the plain argmax somewhere, inference ones never
    noisy = [blk(g, z)[2] for _ in range(5)]
    assert any(not torch.equal(n, logits.argmax(1)) for n in noisy)
    blk.eval()
    with torch.no_grad():
        assert torch.equal(blk(g, z)[2], blk(g, z)[2])


def test_grounding_scores_and_loss_match_numpy():
    rng = np.random.default_rng(3)
    K, J, G, E = 7, 4, 5, 8
    nouns = rng.normal(size=(K, E))
    nouns /= np.linalg.norm(nouns, axis=1, keepdims=True)
    groups = rng.normal(size=(J, G, E))
    groups /= np.linalg.norm(groups, axis=-1, keepdims=True)
    owner = rng.integers(0, J, size=K)
    same = rng.random((K, J)) < 0.3
    tau_g, temp = 0.1, 0.07
    sim = np.einsum("ke,jme->kjm", nouns, groups)
    a = np.einsum("kjm,jme->kje", np_softmax(sim / tau_g, -1), groups)
    s = np.einsum("ke,kje->kj", nouns, a)
    got = grounding_scores(torch.tensor(nouns), torch.tensor(groups), tau_g)
    np.testing.assert_allclose(f64(got), s, atol=1e-10)
    keep = ~same | (np.arange(J)[None] == owner[:, None])
    logits = np.where(keep, s / temp, -np.inf)
    want = np.mean([-(logits[k, owner[k]] - np.log(np.exp(logits[k][keep[k]]).sum())) for k in range(K)])
    loss = grounding_loss(
        torch.tensor(nouns),
        torch.tensor(owner),
        torch.tensor(same),
        torch.tensor(groups),
        tau_g,
        torch.tensor(temp, dtype=torch.float64),
    )
    assert math.isclose(float(loss), want, rel_tol=1e-9)


def test_grounding_loss_ignores_same_noun_negatives():
    """A clip whose caption names the same noun is no negative: making its groups match the noun
    perfectly does not change the loss."""
    rng = np.random.default_rng(4)
    nouns = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(1, 6))), dim=-1)
    groups = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(3, 4, 6))), dim=-1)
    owner, same = torch.tensor([0]), torch.tensor([[True, True, False]])
    base = grounding_loss(nouns, owner, same, groups, 0.1, torch.tensor(0.1, dtype=torch.float64))
    groups2 = groups.clone()
    groups2[1] = nouns[0]
    assert math.isclose(
        float(grounding_loss(nouns, owner, same, groups2, 0.1, torch.tensor(0.1, dtype=torch.float64))),
        float(base),
        rel_tol=1e-12,
    )
    assert float(
        grounding_loss(
            nouns, owner, torch.tensor([[True, False, False]]), groups2, 0.1, torch.tensor(0.1, dtype=torch.float64)
        )
    ) > float(base)


def test_splice_and_temporal_grouping_loss_match_numpy():
    rng = np.random.default_rng(5)
    B, T = 4, 6
    tokens = torch.tensor(rng.normal(size=(B, T, 3, 2)))
    partner, start, end = torch.tensor([1, 2, 3]), torch.tensor([2, 1, 5]), torch.tensor([6, 3, 6])
    out, y = splice(tokens, partner, start, end)
    assert out.shape == (3, T, 3, 2)
    for i in range(3):
        for t in range(T):
            pasted = int(start[i]) <= t < int(end[i])
            assert int(y[i, t]) == (0 if pasted else 1)
            src = tokens[int(partner[i]), t] if pasted else tokens[i, t]
            assert torch.equal(out[i, t], src)
    frames = rng.normal(size=(3, T, 5))
    frames /= np.linalg.norm(frames, axis=-1, keepdims=True)
    temp = 0.2
    total = 0.0
    for i in range(3):
        yi = y[i].numpy()
        f = frames[i][yi == 1].mean(0)
        b = frames[i][yi == 0].mean(0)
        for t in range(T):
            lg = np.array([frames[i, t] @ b, frames[i, t] @ f]) / temp
            total += -(lg[yi[t]] - np.log(np.exp(lg).sum()))
    got = temporal_grouping_loss(torch.tensor(frames), y, torch.tensor(temp, dtype=torch.float64))
    assert math.isclose(float(got), total / (3 * T), rel_tol=1e-9)


def test_contrastive_loss_matches_numpy():
    rng = np.random.default_rng(6)
    zv = rng.normal(size=(5, 4))
    zt = rng.normal(size=(5, 4))
    temp, eps = 0.1, 0.1  # itc_loss uses label smoothing 0.1
    logits = zt @ zv.T / temp

    def ce(lg):
        logp = lg - np.log(np.exp(lg).sum(1, keepdims=True))
        tgt = np.full(lg.shape, eps / lg.shape[1]) + np.eye(len(lg)) * (1 - eps)
        return -(tgt * logp).sum(1).mean()

    got = contrastive_loss(torch.tensor(zv), torch.tensor(zt), torch.tensor(temp, dtype=torch.float64))
    assert math.isclose(float(got), 0.5 * (ce(logits) + ce(logits.T)), rel_tol=1e-9)


def test_video_head_outputs():
    torch.manual_seed(7)
    cfg = SViLMConfig(
        backbone_dim=24,
        text_dim=12,
        grid=(3, 4),
        frames=5,
        dim=16,
        heads=2,
        layers=3,
        group_at=[1, 3],
        groups=6,
        embed_dim=8,
    )
    heads = SViLMHeads(cfg).eval()
    x = torch.randn(2, 5, 13, 24)
    with torch.no_grad():
        zv, zg, groups, assign, probs, frames, change = heads.video(x)
        again = heads.video(x)
    assert zv.shape == (2, 1, 8) and groups.shape == (2, 6, 8) and assign.shape == (2, 5, 12)
    assert probs.shape == (2, 5, 12, 6) and frames.shape == (2, 5, 8) and change.shape == (2, 5)
    assert assign.dtype == torch.int64 and torch.equal(assign, probs.argmax(-1))
    assert all(torch.equal(a, b) for a, b in zip(again, (zv, zg, groups, assign, probs, frames, change)))
    F = f64(frames)
    want = 1 - (F[:, 1:] * F[:, :-1]).sum(-1) / np.linalg.norm(F[:, 1:], axis=-1) / np.linalg.norm(F[:, :-1], axis=-1)
    np.testing.assert_allclose(f64(change[:, 1:]), want, atol=1e-6)
    assert np.all(f64(change[:, 0]) == 0)
    # clips are independent (no batch leakage), and the frame features see the whole clip (the
    # video tokens go on to the later blocks after grouping)
    with torch.no_grad():
        one = heads.video(x[:1])
        x2 = x.clone()
        x2[:, 4] = torch.randn(2, 13, 24)
        moved = heads.video(x2)
    torch.testing.assert_close(one[2], groups[:1])
    assert not torch.allclose(moved[5][:, 0], frames[:, 0])
    # a text head gives two different unit-norm embeddings of the same text
    t, n = heads.text(torch.randn(3, 7, 12), torch.ones(3, 7, dtype=torch.long))
    assert t.shape == n.shape == (3, 8) and not torch.allclose(t, n)


@pytest.mark.parametrize(
    "bad, msg",
    [
        ({"group_at": [3]}, "group_at"),
        ({"group_at": []}, "group_at"),
        ({"group_at": [1, 1], "layers": 2}, "group_at"),
        ({"groups": 0}, "groups"),
        ({"dim": 30, "heads": 4}, "divisible"),
        ({"gumbel_tau": 0}, "gumbel_tau"),
        ({"sizes": 3}, "unknown"),
        ({"ground_weight": -1}, "ground_weight"),
    ],
)
def test_model_config_errors(bad, msg):
    with pytest.raises(ValueError, match=msg):
        validate_model(bad)


def test_training_config_accepts_the_family(tmp_path):
    from finsta.families import load_config
    from finsta.train.config import ConfigError

    cfg = load_config("configs/svilm_synthetic.yaml")
    assert cfg.family == "svilm" and cfg.model["group_at"] == [1]
    with pytest.raises(ConfigError, match="group_at"):
        load_config("configs/svilm_synthetic.yaml", {"model.group_at": [5]})


def test_cell_coverage_matches_brute_force():
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 3, size=(2, 14, 21))
    cov = cell_coverage(labels, 1, (2, 3))  # cells of 7 x 7 pixels
    for t in range(2):
        for r in range(2):
            for c in range(3):
                cell = labels[t, r * 7 : (r + 1) * 7, c * 7 : (c + 1) * 7]
                assert math.isclose(cov[t, r, c], (cell == 2).mean())


def test_pointing_hits_and_random_baseline():
    # 1 noun, 2 frames, 4 patches (2 x 2); the object covers patch 3 in frame 0 and is invisible in frame 1
    heat = np.array([[[0.1, 0.9, 0.9, 0.2], [0.5, 0.5, 0.5, 0.5]]])
    assign = np.array([[0, 1, 1, 2], [0, 0, 0, 0]])
    probs = np.zeros((2, 4, 3))
    probs[0, :, :] = [[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]
    probs[1, :, 0] = 1
    cov = [np.array([[[0.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])]
    hits, chance = pointing(heat, assign, probs, cov)
    assert hits == [0.0] and chance == [0.25]  # peak = patch 2 (tie with 1, more confident); frame 1 skipped
    cov[0][0, 1, 0] = 0.3  # the object now also covers 30% of patch 2
    hits, chance = pointing(heat, assign, probs, cov)
    assert hits == [1.0] and chance == [0.5]
    hits, chance = pointing(heat, assign, probs, cov, min_cover=0.5)
    assert hits == [0.0] and chance == [0.25]


def test_temporal_helpers():
    partner, cuts = temporal_cuts(50, 8)
    assert np.all(partner != np.arange(50)) and cuts.min() >= 1 and cuts.max() <= 7
    change = np.zeros((3, 8))
    change[0, 3], change[1, 5], change[2, 2] = 1, 1, 1
    m = temporal_metrics(change, np.array([3, 5, 6]))
    assert math.isclose(m["cut_acc"], 2 / 3) and math.isclose(m["cut_chance"], 1 / 7)
    assert math.isclose(m["frame_group_acc"], (8 + 8 + 4) / 24)  # clip 2: frames 2..5 on the wrong side
    thr = best_threshold(np.array([0.8, 0.9, 0.3]), np.array([0.1, 0.2, 0.35, 0.05]))
    # thresholds in (0.2, 0.3) keep all 3 cuts with 1 false alarm (F1 6/7); above 0.35 one cut is lost (F1 4/5)
    assert 0.2 < thr < 0.3
    assert 0.35 < best_threshold(np.array([0.8, 0.9]), np.array([0.1, 0.2, 0.35, 0.05])) < 0.8


def test_noun_contrast_loss_matches_numpy():
    from finsta.models.svilm import noun_contrast_loss

    rng = np.random.default_rng(9)
    K, J, G, E = 6, 3, 4, 5
    nouns = rng.normal(size=(K, E))
    groups = rng.normal(size=(J, G, E))
    owner = np.array([0, 0, 1, 2, 2, 2])  # clip 1 has a single noun: no term
    tau_g, temp = 0.2, 0.1
    a = []
    for k in range(K):
        w = np_softmax(groups[owner[k]] @ nouns[k] / tau_g, 0)
        a.append(w @ groups[owner[k]])
    a = np.array(a)
    terms = []
    for k in range(K):
        mates = np.flatnonzero(owner == owner[k])
        if len(mates) < 2:
            continue
        lg = np.array([nouns[k] @ a[j] for j in mates]) / temp
        terms.append(-(nouns[k] @ a[k] / temp - np.log(np.exp(lg).sum())))
    got = noun_contrast_loss(
        torch.tensor(nouns), torch.tensor(owner), torch.tensor(groups), tau_g, torch.tensor(temp, dtype=torch.float64)
    )
    assert math.isclose(float(got), np.mean(terms), rel_tol=1e-9)
    one = noun_contrast_loss(
        torch.tensor(nouns[:1]), torch.tensor([0]), torch.tensor(groups), tau_g, torch.tensor(temp, dtype=torch.float64)
    )
    assert float(one) == 0.0
