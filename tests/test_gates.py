"""The STGT domain gates (finsta.models.stgt.DomainGate and the Bridged*Head routing) against numpy float64: a
row's logit is the max over its items (frames' token 0, a caption's unpadded token features), so one real item
makes a row real whatever its other items look like. Small random heads, no backbone."""

from __future__ import annotations

import numpy as np
import torch
from helpers import SEED, case_rng, replay_hint

from finsta.models.stgt import GATE_SHARPNESS, DomainGate, STGTConfig, STGTHeads


def _random_gate(gate: DomainGate, rng: np.random.Generator) -> None:
    with torch.no_grad():  # the gate starts constant (zero weights); make it depend on the input
        for p in (gate.linear.weight, gate.linear.bias, gate.norm.weight, gate.norm.bias):
            p.copy_(torch.from_numpy(rng.normal(0, 0.3, p.shape)))


def _item_logits(gate: DomainGate, items: np.ndarray) -> np.ndarray:
    """LayerNorm(item) . w + b per item, float64."""
    w = lambda p: p.detach().double().numpy()  # noqa: E731
    x = (items - items.mean(-1, keepdims=True)) / np.sqrt(items.var(-1, keepdims=True) + gate.norm.eps)
    return (x * w(gate.norm.weight) + w(gate.norm.bias)) @ w(gate.linear.weight)[0] + w(gate.linear.bias)[0]


def _heads(rng: np.random.Generator) -> STGTHeads:
    cfg = STGTConfig(
        backbone_dim=24, text_dim=16, grid=(2, 2), frames=4, dim=16, heads=2, queries=2, query_layers=1,
        embed_dim=16 + 8, bridge=True, bridge_top=3, bridge_weight=0.5, bridge_gate=True,
    )  # fmt: skip
    heads = STGTHeads(cfg).eval()
    with torch.no_grad():  # an empty bridge scores 0 everywhere: fill it
        for buf in (heads.video.bridge.fc_weight, heads.video.bridge.fc_bias, heads.video.bridge.classes):
            buf.copy_(torch.from_numpy(rng.normal(0, 1, buf.shape)))
    _random_gate(heads.video.gate, rng)
    _random_gate(heads.text.gate, rng)
    return heads


def test_gate_logit_is_the_max_over_unpadded_items():
    rng = case_rng(SEED, {"test": "gate max"})
    gate = DomainGate(16, 0.5)
    _random_gate(gate, rng)
    items = rng.normal(0, 1, (5, 7, 16))
    mask = (np.arange(7)[None] < rng.integers(1, 8, (5, 1))).astype(np.int64)  # 1..7 items kept per row
    ref = np.where(mask == 1, _item_logits(gate, items), -np.inf).max(-1)
    with torch.no_grad(), replay_hint("gate max"):
        got = gate(torch.from_numpy(items).float(), torch.from_numpy(mask))
        np.testing.assert_allclose(got.double().numpy(), ref, atol=1e-5)
        padded = items.copy()
        padded[mask == 0] = rng.normal(0, 100, padded[mask == 0].shape)  # padding never counts
        torch.testing.assert_close(gate(torch.from_numpy(padded).float(), torch.from_numpy(mask)), got)
        np.testing.assert_allclose(
            gate(torch.from_numpy(items).float()).double().numpy(), _item_logits(gate, items).max(-1), atol=1e-5
        )
        g = DomainGate.weight(got)
        assert not g.requires_grad
        np.testing.assert_allclose(g.double().numpy(), 1 / (1 + np.exp(-GATE_SHARPNESS * ref)), atol=1e-5)


def test_one_real_item_makes_the_row_real():
    """Trained on rows whose items all look synthetic (a < 0 direction) against rows with items of both kinds,
    the gate calls a row real when one item is real-like (a real caption with colour words) and synthetic only
    when every item is synthetic-like."""
    rng = case_rng(SEED, {"test": "gate mil"})
    torch.manual_seed(SEED % 2**31)
    dim, n, k = 8, 64, 6
    syn_item = lambda m: rng.normal(0, 0.3, (m, dim)) + np.eye(dim)[0] * -2  # noqa: E731
    real_item = lambda m: rng.normal(0, 0.3, (m, dim)) + np.eye(dim)[1] * 2  # noqa: E731
    syn = syn_item(n * k).reshape(n, k, dim)
    real = real_item(n * k).reshape(n, k, dim)
    real[:, : k // 2] = syn_item(n * (k // 2)).reshape(n, k // 2, dim)  # half of each real row looks synthetic
    x = torch.from_numpy(np.concatenate([syn, real])).float()
    y = torch.cat([torch.zeros(n), torch.ones(n)])
    gate = DomainGate(dim, 0.5)
    opt = torch.optim.Adam(gate.parameters(), lr=0.05)
    for _ in range(60):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(gate(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad(), replay_hint("gate mil"):
        probe = syn_item(4 * k).reshape(4, k, dim)
        probe[:2, -1] = real_item(2)  # rows 0, 1: one real item among synthetic ones
        logit = gate(torch.from_numpy(probe).float())
        assert (logit[:2] > 0).all() and (logit[2:] < 0).all(), logit


def test_bridged_heads_route_by_their_gates():
    """The bridge part of each embedding has norm sqrt(g), g = sigmoid(GATE_SHARPNESS * max item logit): the video
    gate over the frames' token 0, the text gate over the unpadded token features."""
    rng = case_rng(SEED, {"test": "gate heads"})
    torch.manual_seed(SEED % 2**31)
    heads = _heads(rng)
    cfg = heads.cfg
    tokens = rng.normal(0, 1, (3, cfg.frames, 1 + cfg.tokens_per_frame, cfg.backbone_dim))
    feats = rng.normal(0, 1, (3, 5, cfg.text_dim))
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    gv = 1 / (1 + np.exp(-GATE_SHARPNESS * _item_logits(heads.video.gate, tokens[:, :, 0]).max(-1)))
    gt = 1 / (1 + np.exp(-GATE_SHARPNESS * np.where(mask == 1, _item_logits(heads.text.gate, feats), -np.inf).max(-1)))
    with torch.no_grad(), replay_hint("gate heads"):
        zv, _ = heads.video(torch.from_numpy(tokens).float())
        zt = heads.text(torch.from_numpy(feats).float(), torch.from_numpy(mask))
        np.testing.assert_allclose(
            zv[:, :, cfg.learned_dim :].norm(dim=-1).double().numpy() ** 2, gv[:, None].repeat(2, 1), atol=1e-5
        )
        np.testing.assert_allclose(zt[:, cfg.learned_dim :].norm(dim=-1).double().numpy() ** 2, gt, atol=1e-5)
