#!/usr/bin/env python3
"""Benchmark STGraphAttention's training step in PyTorch: the dense reference form ([B, H, L, L]) against the
band-sparse form that eager calls use (each query frame against its 2r + 1 key frames), forward + backward.

Peak memory is the allocator's: one forward + backward runs under ``torch.profiler`` with
``profile_memory=True``, whose ``[memory]`` events are every allocation and free of torch's allocator (CPU,
or CUDA with --device cuda); the peak is the largest running sum over them, so inputs made before the step
are not counted, while the output, autograd's saved tensors, temporaries and the gradients are. Times are the
median of --runs steps (without the profiler) after --warmup. "grad rel" is max |band - dense| / max |dense|
over the output and the gradients of q, k and v (float32, same inputs). Dense cases whose estimated peak
exceeds --max-dense-gb are skipped (the band form still runs).

    python benchmarks/bench_train_op.py                     # T = 8, 16, 32 x P = 49, 197; H = 8, d = 64; B = 1
    python benchmarks/bench_train_op.py --T 32 --P 197 --runs 2 --max-dense-gb 12
    python benchmarks/bench_train_op.py --stgt-demo         # + configs/stgt_demo.yaml's head: B=32, H=8, d=32
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "export"))

from finsta.nn.st_graph_attention import st_graph_attention, st_graph_attention_dense  # noqa: E402

FORMS: dict[str, Callable] = {"dense": st_graph_attention_dense, "band": st_graph_attention}
DENSE_BUFFERS = 4  # [B, H, L, L] float32 buffers the dense step holds at its peak, rounded up (measured: 3.05)


def inputs(B: int, H: int, T: int, P: int, d: int, D: int, device: str, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    L = T * P
    x = torch.randn(B, L, D, generator=g) + torch.randn(B, 1, D, generator=g)  # correlated: some edges kept
    q, k, v = (torch.randn(B, H, L, d, generator=g) for _ in range(3))
    grad = torch.randn(B, H, L, d, generator=g)
    return tuple(t.to(device) for t in (x, q, k, v, grad))


def step(form: Callable, x, q, k, v, grad, P: int, r: int, tau: float) -> tuple[torch.Tensor, ...]:
    """One forward + backward; returns (out, dq, dk, dv)."""
    q, k, v = (t.detach().requires_grad_(True) for t in (q, k, v))
    out = form(x, q, k, v, P, tau, r)
    out.backward(grad)
    return out.detach(), q.grad, k.grad, v.grad


def peak_bytes(fn: Callable[[], object], device: str) -> int:
    """The allocator's peak over fn(), relative to what was allocated before it."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities, profile_memory=True) as prof:
        fn()
    kind = torch.autograd.DeviceType.CUDA if device == "cuda" else torch.autograd.DeviceType.CPU
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == kind
    )
    live = peak = 0
    for _, n in events:
        live += n
        peak = max(peak, live)
    return peak


def timed(fn: Callable[[], object], device: str, runs: int, warmup: int) -> float:
    """Median ms of fn()."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def rel_diff(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> float:
    return max(float((x - y).abs().max() / y.abs().max().clamp_min(1e-30)) for x, y in zip(a, b, strict=True))


def bench_case(B, H, T, P, d, D, args) -> dict:
    x, q, k, v, grad = inputs(B, H, T, P, d, D, args.device)
    L = T * P
    dense_gb = DENSE_BUFFERS * B * H * L * L * 4 / 1e9
    row: dict = dict(B=B, H=H, T=T, P=P, d=d, D=D, L=L)
    results = {}
    for name, form in FORMS.items():
        if name == "dense" and dense_gb > args.max_dense_gb:
            continue
        run = lambda form=form: step(form, x, q, k, v, grad, P, args.r, args.tau)  # noqa: E731
        row[f"{name}_mb"] = peak_bytes(run, args.device) / 2**20
        row[f"{name}_ms"] = timed(run, args.device, args.runs, args.warmup)
        results[name] = run()
    if "dense" in results:
        row["grad_rel"] = rel_diff(results["band"], results["dense"])
    return row


def fmt(row: dict) -> str:
    def val(key, spec):
        return format(row[key], spec) if key in row else "skipped"

    speed = f"{row['dense_ms'] / row['band_ms']:.2f}x" if "dense_ms" in row else "-"
    mem = f"1/{row['dense_mb'] / row['band_mb']:.1f}" if "dense_mb" in row else "-"
    return (
        f"| {row['B']} | {row['H']} | {row['T']} | {row['P']} | {row['d']} | {row['D']} | {row['L']} | "
        f"{val('dense_ms', '.1f')} | "
        f"{val('band_ms', '.1f')} | {speed} | {val('dense_mb', '.1f')} | {val('band_mb', '.1f')} | {mem} | "
        f"{val('grad_rel', '.1e')} |"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", default="8,16,32", help="frames, comma-separated")
    ap.add_argument("--P", default="49,197", help="tokens per frame, comma-separated")
    ap.add_argument("--B", type=int, default=1)
    ap.add_argument("--H", type=int, default=8)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--D", type=int, default=512, help="width of x, the features that define the graph")
    ap.add_argument("--r", type=int, default=1, help="frame_radius")
    ap.add_argument("--tau", type=float, default=0.1, help="sim_threshold")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--max-dense-gb", type=float, default=8.0, help="skip dense cases estimated above this")
    ap.add_argument("--stgt-demo", action="store_true", help="add configs/stgt_demo.yaml's head: B=32 H=8 T=8 P=49")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = [(args.B, args.H, int(T), int(P), args.d, args.D) for P in args.P.split(",") for T in args.T.split(",")]
    if args.stgt_demo:  # dim 256, heads 8, batch_size 32, frames 8, 224 px frames: 7 x 7 patches
        cases.append((32, 8, 8, 49, 32, 256))
    print(
        f"STGraphAttention forward + backward on {args.device} ({os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}), r={args.r}, tau={args.tau}; median of {args.runs} after "
        f"{args.warmup} warm-up; peak = allocator peak over one step (torch.profiler memory events)\n"
    )
    print(
        "| B | H | T | P | d | D | L | dense ms | band ms | speed-up | dense peak MB | band peak MB | band/dense | grad rel |"
    )
    print("|---" * 14 + "|")
    for case in cases:
        print(fmt(bench_case(*case, args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
