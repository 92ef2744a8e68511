#!/usr/bin/env python3
"""Benchmark the finsta custom ops: custom kernel in ONNX Runtime vs the portable ONNX function in
ONNX Runtime vs PyTorch eager, on the CPU (or on the CUDA provider/GPU with --device cuda).

Each method runs in its own subprocess so that its peak memory is its own: the peak resident set
is reset (/proc/self/clear_refs) once inputs and session exist, and the table reports its growth
over the warm-up and timed runs (the working memory of the op, output included). Times are the median of --runs runs after --warmup runs.

    python benchmarks/bench_ops.py                       # the two default STGraphAttention shapes
    python benchmarks/bench_ops.py --shape 2,8,8,49,64,512 --runs 50
    python benchmarks/bench_ops.py --device cuda         # GPU: ORT CUDA provider and torch.cuda
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "export"))

# (B, H, T, P, d, D)
DEFAULT_SHAPES = [(1, 8, 8, 49, 64, 512), (1, 12, 16, 196, 64, 768)]
METHODS = ["custom", "portable", "torch"]
SIM_THRESHOLD = 0.1


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _inputs(shape, seed=0):
    B, H, T, P, d, D = shape
    rng = np.random.default_rng(seed)
    L = T * P
    x = rng.standard_normal((B, L, D)).astype(np.float32) + rng.standard_normal((B, 1, D)).astype(np.float32)
    q, k, v = (rng.standard_normal((B, H, L, d)).astype(np.float32) for _ in range(3))
    return dict(x=x, q=q, k=k, v=v)


def _ort_runner(shape, method, device, threads):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    import finsta_rt
    from finsta.export import attach_portable_functions

    P = shape[3]
    node = helper.make_node("STGraphAttention", list("xqkv"), ["out"], domain="finsta",
                            tokens_per_frame=P, sim_threshold=SIM_THRESHOLD)
    vi = lambda n, r: helper.make_tensor_value_info(n, TensorProto.FLOAT, [None] * r)  # noqa: E731
    graph = helper.make_graph([node], "bench", [vi("x", 3)] + [vi(n, 4) for n in "qkv"], [vi("out", 4)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("finsta", 1)],
                              ir_version=10)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    if method == "custom":
        finsta_rt.register(so, device)
    else:
        attach_portable_functions(model)
    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=providers)
    feeds = _inputs(shape)
    if device == "cuda":  # inputs and output stay on the GPU: time the op, not the copies
        binding = sess.io_binding()
        for name, arr in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr, "cuda", 0))
        binding.bind_output("out", "cuda")

        def run():
            sess.run_with_iobinding(binding)
            binding.synchronize_outputs()
            return binding.get_outputs()[0]

        return run, lambda o: o.numpy()
    return (lambda: sess.run(None, feeds)[0]), (lambda o: o)


def _torch_runner(shape, device, threads):
    import torch

    from finsta.nn import st_graph_attention

    torch.set_num_threads(threads or os.cpu_count())
    dev = "cuda" if device == "cuda" else "cpu"
    t = {k: torch.from_numpy(v).to(dev) for k, v in _inputs(shape).items()}
    P = shape[3]

    def run():
        with torch.no_grad():
            out = st_graph_attention(t["x"], t["q"], t["k"], t["v"], P, SIM_THRESHOLD)
        if dev == "cuda":
            torch.cuda.synchronize()
        return out

    return run, lambda o: o.cpu().numpy()


def worker(args) -> None:
    shape = tuple(int(s) for s in args.worker_shape.split(","))
    if args.method == "torch":
        run, to_numpy = _torch_runner(shape, args.device, args.threads)
    else:
        run, to_numpy = _ort_runner(shape, args.method, args.device, args.threads)
    # Peak memory covers the first run too: ORT's arena and torch's caches grow there.
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set (VmHWM)
    base = _rss_kb("VmRSS")
    for _ in range(args.warmup):
        out = run()
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
    peak = _rss_kb("VmHWM") - base
    gpu_peak = None
    if args.device == "cuda" and args.method == "torch":
        import torch
        gpu_peak = torch.cuda.max_memory_allocated() / 2**20
    np.save(args.out, to_numpy(out))
    print(json.dumps(dict(median_ms=1e3 * statistics.median(times), min_ms=1e3 * min(times),
                          peak_mb=peak / 1024, gpu_peak_mb=gpu_peak)))


def measure(shape, method, args, tmp: Path) -> dict:
    out = tmp / f"{method}.npy"
    cmd = [sys.executable, __file__, "--worker-shape", ",".join(map(str, shape)), "--method", method,
           "--runs", str(args.runs), "--warmup", str(args.warmup), "--threads", str(args.threads),
           "--device", args.device, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
        return dict(error=tail[0][:120])
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["out"] = np.load(out)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", action="append", help="B,H,T,P,d,D (repeatable); default: the two issue shapes")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per method (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: all cores)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma list of " + ",".join(METHODS))
    ap.add_argument("--worker-shape", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker_shape:
        worker(args)
        return 0

    import tempfile

    shapes = [tuple(int(s) for s in sh.split(",")) for sh in args.shape] if args.shape else DEFAULT_SHAPES
    methods = args.methods.split(",")
    print(f"STGraphAttention on {args.device}, {os.cpu_count()} cores, threads={args.threads or 'all'}, "
          f"median of {args.runs} runs after {args.warmup} warm-up; peak = resident-set growth while running")
    hdr = f"{'B,H,T,P,d,D':<22} {'method':<9} {'median ms':>10} {'peak MB':>9} {'time/custom':>12} {'max rel diff':>13}"
    print(hdr)
    print("-" * len(hdr))
    with tempfile.TemporaryDirectory() as tmp:
        for shape in shapes:
            res = {m: measure(shape, m, args, Path(tmp)) for m in methods}
            base = res.get("custom", {})
            for m in methods:
                r = res[m]
                name = ",".join(map(str, shape))
                if "error" in r:
                    print(f"{name:<22} {m:<9} failed: {r['error']}")
                    continue
                ratio = f"{r['median_ms'] / base['median_ms']:.2f}x" if "median_ms" in base else "-"
                diff = "-"
                if "out" in base:
                    ref = base["out"].astype(np.float64)
                    diff = f"{np.abs(r['out'] - ref).max() / np.abs(ref).max():.1e}"
                peak = r["peak_mb"] if r.get("gpu_peak_mb") is None else r["gpu_peak_mb"]
                print(f"{name:<22} {m:<9} {r['median_ms']:>10.2f} {peak:>9.1f} {ratio:>12} {diff:>13}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
