#!/usr/bin/env python3
"""End-to-end demo of what exists so far: a PyTorch block with STGT's graph attention is exported
to ONNX (custom and portable flavours) and run by ONNX Runtime with the finsta op library, then
compared with PyTorch. Later releases replace this with: train, export a bundle, extract and
search on real video.

    make demo            # or: .venv/bin/python examples/demo.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

import finsta_rt
from finsta.export import attach_portable_functions
from finsta.nn import STGraphAttention

OUT = Path("bundles/demo")


class GraphBlock(torch.nn.Module):
    """STGT's local graph branch: q, k, v projections around STGraphAttention, one output projection."""

    def __init__(self, D=256, H=8, P=49):
        super().__init__()
        self.H, self.d = H, D // H
        self.qkv = torch.nn.Linear(D, 3 * D)
        self.att = STGraphAttention(tokens_per_frame=P, sim_threshold=0.1)
        self.proj = torch.nn.Linear(D, D)

    def forward(self, x):
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.H, self.d).permute(2, 0, 3, 1, 4)
        return self.proj(self.att(x, q, k, v).transpose(1, 2).reshape(B, L, D))


def timed(fn, runs=10):
    fn()
    t0 = time.perf_counter()
    for _ in range(runs):
        out = fn()
    return out, 1e3 * (time.perf_counter() - t0) / runs


def main() -> None:
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    model = GraphBlock().eval()
    T, P, D = 8, 49, 256
    x = torch.randn(2, T * P, D)
    dyn = {"x": {0: torch.export.Dim("B", min=1, max=64), 1: torch.export.Dim.AUTO}}
    proto = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=dyn, verbose=False).model_proto
    proto.ir_version = min(proto.ir_version, 10)
    onnx.save(proto, OUT / "graph_block.custom.onnx")
    onnx.save(attach_portable_functions(proto), OUT / "graph_block.portable.onnx")
    print(f"exported {OUT}/graph_block.custom.onnx and graph_block.portable.onnx")

    xs = torch.randn(4, T * P, D)
    with torch.no_grad():
        ref, t_torch = timed(lambda: model(xs).numpy())
    rows = [("PyTorch eager", t_torch, 0.0)]
    for flavour, lib in (("custom", "cpu"), ("portable", None)):
        so = ort.SessionOptions()
        if lib:
            finsta_rt.register(so, lib)
        sess = ort.InferenceSession(str(OUT / f"graph_block.{flavour}.onnx"), so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        out, ms = timed(lambda: sess.run(None, {name: xs.numpy()})[0])
        rows.append((f"ORT {flavour}" + (" + finsta ops" if lib else " (stock ORT)"), ms, float(np.abs(out - ref).max())))
    print(f"\nSTGT graph block, B=4, T={T}, P={P}, D={D}")
    print(f"{'runner':<32} {'ms/batch':>9} {'max |diff| vs torch':>20}")
    for name, ms, diff in rows:
        print(f"{name:<32} {ms:>9.2f} {diff:>20.2e}")


if __name__ == "__main__":
    main()
