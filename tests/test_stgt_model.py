"""STGT's video head against float64 references written from the paper's spec and the official
code's semantics (docs/families.md, STGT): the block (proj_fc; temporal branch = one residual
attention block applied twice with shared weights over the frames' CLS tokens; graph branch =
thresholded-cosine graph in a +-r frame band, edge weights multiplying the logits, no residual;
per-frame spatial attention + MLP), the compression (CLS, column maxima, row maxima per frame)
and the whole head (time embedding nearest-interpolated, frozen position table, Q-Former-style
query blocks, L2-normalised projection). The references read the module's weights, nothing else."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import SEED, case_rng, replay_hint

from finsta.models.stgt import STGTBlock, STGTConfig, STGTVideoHead

TOL = 1e-9  # the module runs in float64 here: any difference beyond rounding is a semantic one


def w(p: torch.Tensor) -> np.ndarray:
    return p.detach().double().numpy()


def lin(x: np.ndarray, m) -> np.ndarray:
    return x @ w(m.weight).T + w(m.bias)


def layer_norm(x: np.ndarray, m, eps: float = 1e-5) -> np.ndarray:
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w(m.weight) + w(m.bias)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def mlp(x: np.ndarray, m) -> np.ndarray:  # D -> 4D -> D with QuickGELU x * sigmoid(1.702 x)
    h = lin(x, m[0])
    return lin(h / (1 + np.exp(-1.702 * h)), m[2])


def mha(x: np.ndarray, kv: np.ndarray, m, heads: int) -> np.ndarray:
    """Multi-head attention of x [N, D] over kv [M, Dkv], one sequence, with q/k/v/o biases."""
    q, k, v = lin(x, m.q), lin(kv, m.k), lin(kv, m.v)
    d = q.shape[-1] // heads
    out = np.concatenate(
        [
            softmax(q[:, h * d : (h + 1) * d] @ k[:, h * d : (h + 1) * d].T / np.sqrt(d)) @ v[:, h * d : (h + 1) * d]
            for h in range(heads)
        ],
        axis=-1,
    )
    return lin(out, m.o)


def residual_block(x: np.ndarray, m, heads: int) -> np.ndarray:
    """x + MHA(LN(x)), then x + MLP(LN(x)) (pre-LN), over one sequence x [N, D]."""
    a = layer_norm(x, m.ln_1)
    x = x + mha(a, a, m.attn, heads)
    return x + mlp(layer_norm(x, m.ln_2), m.mlp)


def graph_attention(u: np.ndarray, m, cfg: STGTConfig) -> np.ndarray:
    """One video's patch tokens u [T*P, D] (frame-major): A = where(S < tau, 0, S) * band,
    logits = QK^T/sqrt(d) * A, -inf where A == 0, softmax, W_O(P V)."""
    L, D = u.shape
    un = u / np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), 1e-12)
    S = un @ un.T
    frame = np.arange(L) // cfg.tokens_per_frame
    band = np.abs(frame[:, None] - frame[None, :]) <= cfg.frame_radius
    A = np.where(S < cfg.sim_threshold, 0.0, S) * band
    qkv = lin(u, m.qkv)
    d = D // cfg.heads
    heads = []
    for h in range(cfg.heads):
        q, k, v = (qkv[:, j * D + h * d : j * D + (h + 1) * d] for j in range(3))
        logits = np.where(A == 0, -np.inf, q @ k.T / np.sqrt(d) * A)
        heads.append(softmax(logits) @ v)
    return lin(np.concatenate(heads, axis=-1), m.o)


def block_ref(x: np.ndarray, blk: STGTBlock, cfg: STGTConfig) -> np.ndarray:
    """One video's tokens x [T, 1 + P, D] through CrossFramelGraphFormerBlock."""
    T, N, D = x.shape
    x = lin(x, blk.proj_fc)
    g = residual_block(residual_block(x[:, 0], blk.temporal, cfg.heads), blk.temporal, cfg.heads)  # across frames
    u = graph_attention(x[:, 1:].reshape(T * (N - 1), D), blk.graph, cfg).reshape(T, N - 1, D)  # no residual
    x = np.concatenate([g[:, None], u], axis=1)
    return np.stack([residual_block(x[t], blk.spatial, cfg.heads) for t in range(T)])


def compress_ref(x: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Per frame: CLS, then for each grid column the max over its rows, then for each row the max
    over its columns: [T * (1 + w + h), D]."""
    h, wd = grid
    out = []
    for t in range(x.shape[0]):
        cells = x[t, 1:]  # row-major: cell (r, c) is token r * w + c
        out.append(x[t, 0])
        out += [np.max([cells[r * wd + c] for r in range(h)], axis=0) for c in range(wd)]
        out += [np.max([cells[r * wd + c] for c in range(wd)], axis=0) for r in range(h)]
    return np.stack(out)


def pool_ref(tokens: np.ndarray, grid: tuple[int, int], p: int) -> np.ndarray:
    """[T, 1 + h*w, C] -> [T, 1 + ceil(h/p)*ceil(w/p), C]: each cell the mean of the patches it covers."""
    h, wd = grid
    cells = tokens[:, 1:].reshape(tokens.shape[0], h, wd, -1)
    pooled = [cells[:, r : r + p, c : c + p].mean(axis=(1, 2)) for r in range(0, h, p) for c in range(0, wd, p)]
    return np.concatenate([tokens[:, :1], np.stack(pooled, axis=1)], axis=1)


def head_ref(tokens: np.ndarray, head: STGTVideoHead) -> tuple[np.ndarray, np.ndarray]:
    cfg = head.cfg  # the grid after token_pool
    if head.pool > 1:
        tokens = pool_ref(tokens, head.backbone_grid, head.pool)
    T = tokens.shape[0]
    time = w(head.time_embed)[[int(np.floor(i * cfg.frames / T)) for i in range(T)]]  # nearest, as F.interpolate
    x = lin(tokens, head.input_proj) + time[:, None] + w(head.pos_embed)[None]
    for blk in head.blocks:
        x = block_ref(x, blk, cfg)
    mem = layer_norm(layer_norm(compress_ref(x, cfg.grid), head.ln_post) @ w(head.proj), head.ln_vision)
    q = w(head.query_tokens)
    for b in head.query_blocks:
        a = layer_norm(q, b.ln_self)
        q = q + mha(a, a, b.self_attn, cfg.heads)
        q = q + mha(layer_norm(q, b.ln_cross), mem, b.cross_attn, cfg.heads)
        q = q + mlp(layer_norm(q, b.ln_mlp), b.mlp)
    z = lin(q, head.vision_proj)
    return z / np.linalg.norm(z, axis=-1, keepdims=True), mem


def small_cfg(**kw) -> STGTConfig:
    base = dict(
        backbone_dim=12,
        text_dim=8,
        grid=(2, 3),
        frames=4,
        dim=16,
        heads=4,
        layers=1,
        sim_threshold=0.2,
        frame_radius=1,
        queries=3,
        query_layers=2,
        embed_dim=8,
    )
    return STGTConfig(**{**base, **kw})


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("grid", [(2, 3), (3, 2), (1, 4)])
def test_compress_takes_cls_then_column_then_row_maxima(grid):
    case = {"test": "compress", "grid": grid}
    with replay_hint(repr(case)):
        rng = case_rng(SEED, case)
        cfg = small_cfg(grid=grid)
        x = rng.standard_normal((2, 3, 1 + grid[0] * grid[1], cfg.dim))
        got = STGTVideoHead(cfg).compress(torch.from_numpy(x)).numpy()
        ref = np.stack([compress_ref(x[b], grid) for b in range(2)])
        assert got.shape == (2, 3 * (1 + grid[0] + grid[1]), cfg.dim)
        np.testing.assert_array_equal(got, ref)  # max and copies: exact


@pytest.mark.parametrize("T,radius,threshold", [(4, 1, 0.2), (3, 0, 0.0), (5, 2, 0.35)])
def test_block_matches_the_reference(T, radius, threshold):
    case = {"test": "block", "T": T, "radius": radius, "threshold": threshold}
    with replay_hint(repr(case)):
        rng = case_rng(SEED, case)
        torch.manual_seed(int(rng.integers(2**31)))
        cfg = small_cfg(frame_radius=radius, sim_threshold=threshold)
        blk = STGTBlock(cfg).double().eval()
        x = rng.standard_normal((2, T, 1 + cfg.tokens_per_frame, cfg.dim))
        with torch.no_grad():
            got = blk(torch.from_numpy(x)).numpy()
            u = blk.proj_fc(torch.from_numpy(x))[:, :, 1:].reshape(2, -1, cfg.dim).numpy()
        ref = np.stack([block_ref(x[b], blk, cfg) for b in range(2)])
        assert rel_err(got, ref) < TOL, rel_err(got, ref)
        # the case exercises the graph: the threshold drops some in-band edges and keeps others
        un = u / np.linalg.norm(u, axis=-1, keepdims=True)
        frame = np.arange(u.shape[1]) // cfg.tokens_per_frame
        band = (np.abs(frame[:, None] - frame[None, :]) <= radius) & ~np.eye(u.shape[1], dtype=bool)
        kept = ((un @ un.transpose(0, 2, 1)) >= threshold)[:, band].mean()
        assert 0.05 < kept < 0.95, kept


@pytest.mark.parametrize(
    "T,grid,pool",
    # T = cfg.frames, and fewer / more: the time table is interpolated; token_pool 2 on odd and even grids
    [(4, (2, 3), 1), (3, (2, 3), 1), (6, (2, 3), 1), (4, (5, 4), 2), (3, (3, 3), 3)],
)
def test_video_head_matches_the_reference(T, grid, pool):
    case = {"test": "head", "T": T, "grid": grid, "pool": pool}
    with replay_hint(repr(case)):
        rng = case_rng(SEED, case)
        torch.manual_seed(int(rng.integers(2**31)))
        cfg = small_cfg(layers=2, grid=grid, token_pool=pool)
        head = STGTVideoHead(cfg).double().eval()
        with torch.no_grad():  # the learned tables start near 0; make them matter
            head.time_embed.normal_(0, 1.0)
            head.query_tokens.normal_(0, 1.0)
        tokens = rng.standard_normal((2, T, 1 + cfg.tokens_per_frame, cfg.backbone_dim))
        with torch.no_grad():
            zv, mem = (t.numpy() for t in head(torch.from_numpy(tokens)))
        for b in range(2):
            ref_zv, ref_mem = head_ref(tokens[b], head)
            assert rel_err(mem[b], ref_mem) < TOL and rel_err(zv[b], ref_zv) < TOL, (
                rel_err(mem[b], ref_mem),
                rel_err(zv[b], ref_zv),
            )
        h, wd = head.cfg.grid
        assert (h, wd) == (-(-grid[0] // pool), -(-grid[1] // pool))
        assert zv.shape == (2, cfg.queries, cfg.embed_dim) and mem.shape == (2, T * (1 + h + wd), cfg.dim)
        np.testing.assert_allclose(np.linalg.norm(zv, axis=-1), 1.0, rtol=1e-12)
