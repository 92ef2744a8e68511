#!/usr/bin/env python3
"""Benchmark the finsta custom ops: custom kernel in ONNX Runtime vs the portable ONNX function in
ONNX Runtime vs PyTorch eager, on the CPU (or on the CUDA provider/GPU with --device cuda).

Each method runs in its own subprocess so that its peak memory is its own: the peak resident set
is reset (/proc/self/clear_refs) once inputs and session exist, and the table reports its growth
over the warm-up and timed runs (the working memory of the op, output included). Times are the median of --runs runs after --warmup runs.

STGraphAttention also reports GFLOP/s (the op's useful work: the similarity, q.k and a.v over each query's
2r + 1 key frames, whatever a method computes) and, on the CPU, the machine's sgemm GFLOP/s measured in the
same run at the same thread count: numpy's float32 matmul (its BLAS, named in the output) of the similarity's
size, [L, D] x [D, (2r + 1) P], in its own subprocess.

    python benchmarks/bench_ops.py                       # every op at its two default shapes
    python benchmarks/bench_ops.py --shape 2,8,8,49,64,512 --runs 50      # STGraphAttention B,H,T,P,d,D
    python benchmarks/bench_ops.py --op EdgeGraphAttention --shape 8,8,16,32               # B,H,N,d
    python benchmarks/bench_ops.py --op GaussianDiffGraphAttention --shape 4,8,8,16,64     # B,H,T,K,d
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "export"))

METHODS = ["custom", "portable", "torch"]
SIM_THRESHOLD = 0.1
EDGE_DENSITY = 0.3  # EdgeGraphAttention: random graph with self-loops, like a parsed text graph


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _st_inputs(shape, rng):
    B, H, T, P, d, D = shape
    L = T * P
    x = rng.standard_normal((B, L, D)).astype(np.float32) + rng.standard_normal((B, 1, D)).astype(np.float32)
    q, k, v = (rng.standard_normal((B, H, L, d)).astype(np.float32) for _ in range(3))
    return dict(x=x, q=q, k=k, v=v)


def _edge_inputs(shape, rng):
    B, H, N, d = shape
    q, k, v = (rng.standard_normal((B, H, N, d)).astype(np.float32) for _ in range(3))
    adj = (rng.random((B, N, N)) < EDGE_DENSITY) | np.eye(N, dtype=bool)
    return dict(q=q, k=k, v=v, e=rng.standard_normal((B, H, N, N, d)).astype(np.float32), adj=adj)


def _gaussian_inputs(shape, rng):
    """T frames x K object slots: slots of a frame all linked, each slot linked along its track."""
    B, H, T, K, d = shape
    N = T * K
    q, k, v = (rng.standard_normal((B, H, N, d)).astype(np.float32) for _ in range(3))
    frame, slot = np.divmod(np.arange(N), K)
    adj = (frame[:, None] == frame) | ((np.abs(frame[:, None] - frame) == 1) & (slot[:, None] == slot))
    t = np.broadcast_to((frame / max(T - 1, 1))[None, :, None], (B, N, 1))
    pos = np.concatenate([rng.uniform(0, 1, (B, N, 2)), t], -1).astype(np.float32)
    sigma = np.tile(np.array([[0.2, 0.2, 0.3]], np.float32), (H, 1))
    return dict(q=q, k=k, v=v, pos=pos, adj=np.broadcast_to(adj, (B, N, N)).copy(), sigma=sigma)


ST_RADIUS = 1  # the bench's nodes leave frame_radius at its default


def _st_flops(shape) -> float:
    """2 flops per multiply-add of the similarity (D), q.k and a.v (d per head) against each query's key frames."""
    B, H, T, P, d, D = shape
    keys = sum((min(T - 1, t + ST_RADIUS) - max(0, t - ST_RADIUS) + 1) * P for t in range(T))
    return 2.0 * B * P * keys * (D + 2 * H * d)


def _st_sgemm(shape) -> tuple[int, int, int]:
    B, H, T, P, d, D = shape
    return T * P, D, min(T, 2 * ST_RADIUS + 1) * P


def _st_torch(shape, t):
    from finsta.nn import st_graph_attention

    return st_graph_attention(t["x"], t["q"], t["k"], t["v"], shape[3], SIM_THRESHOLD)


def _edge_torch(shape, t):
    from finsta.nn import edge_graph_attention

    return edge_graph_attention(t["q"], t["k"], t["v"], t["e"], t["adj"])


def _gaussian_torch(shape, t):
    from finsta.nn import gaussian_diff_graph_attention

    return gaussian_diff_graph_attention(t["q"], t["k"], t["v"], t["pos"], t["adj"], t["sigma"])


@dataclass(frozen=True)
class OpBench:
    """How to benchmark one op: its shape layout and default shapes, its inputs (numpy, by name),
    its outputs and attributes as one ONNX node, and its PyTorch eager call."""

    shape_names: str
    default_shapes: list
    inputs: Callable
    outputs: list
    torch_call: Callable
    attrs: Callable = lambda shape: {}  # noqa: E731
    label: Callable = lambda shape: ",".join(map(str, shape))  # noqa: E731
    flops: Callable | None = None  # the op's useful floating-point operations at a shape
    sgemm: Callable | None = None  # (M, K, N) of a comparable sgemm, measured beside the op on the CPU


OPS = {
    "STGraphAttention": OpBench(
        "B,H,T,P,d,D",
        [(1, 8, 8, 49, 64, 512), (1, 12, 16, 196, 64, 768)],
        _st_inputs,
        ["out"],
        _st_torch,
        attrs=lambda shape: dict(tokens_per_frame=shape[3], sim_threshold=SIM_THRESHOLD),
        flops=_st_flops,
        sgemm=_st_sgemm,
    ),
    "EdgeGraphAttention": OpBench(
        "B,H,N,d", [(8, 8, 16, 32), (32, 8, 32, 64)], _edge_inputs, ["h", "e_out"], _edge_torch
    ),
    "GaussianDiffGraphAttention": OpBench(
        "B,H,T*K,d",
        [(4, 8, 8, 16, 64), (2, 8, 16, 32, 64)],
        _gaussian_inputs,
        ["out"],
        _gaussian_torch,
        label=lambda s: f"{s[0]},{s[1]},{s[2]}*{s[3]},{s[4]}",
    ),
}


def _inputs(op: str, shape, seed=0):
    return OPS[op].inputs(shape, np.random.default_rng(seed))


def _ort_runner(op, shape, method, device, threads):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    import finsta_rt
    from finsta.export import attach_portable_functions

    spec = OPS[op]
    feeds = _inputs(op, shape)
    node = helper.make_node(op, list(feeds), spec.outputs, domain="finsta", **spec.attrs(shape))
    elem = lambda a: helper.np_dtype_to_tensor_dtype(a.dtype)  # noqa: E731
    vi = [helper.make_tensor_value_info(n, elem(a), [None] * a.ndim) for n, a in feeds.items()]
    vo = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in spec.outputs]
    graph = helper.make_graph([node], "bench", vi, vo)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("finsta", 1)], ir_version=10
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    if method == "custom":
        finsta_rt.register(so, device)
    else:
        attach_portable_functions(model)
    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=providers)
    if device == "cuda":  # inputs and outputs stay on the GPU: time the op, not the copies
        binding = sess.io_binding()
        for name, arr in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr, "cuda", 0))
        for name in spec.outputs:
            binding.bind_output(name, "cuda")

        def run():
            sess.run_with_iobinding(binding)
            binding.synchronize_outputs()
            return binding.get_outputs()

        return run, lambda outs: [o.numpy() for o in outs]
    return (lambda: sess.run(None, feeds)), (lambda outs: outs)


def _torch_runner(op, shape, device, threads):
    import torch

    torch.set_num_threads(threads or os.cpu_count())
    dev = "cuda" if device == "cuda" else "cpu"
    t = {k: torch.from_numpy(v).to(dev) for k, v in _inputs(op, shape).items()}

    def run():
        with torch.no_grad():
            out = OPS[op].torch_call(shape, t)
        if dev == "cuda":
            torch.cuda.synchronize()
        return out if isinstance(out, tuple) else (out,)

    return run, lambda outs: [o.cpu().numpy() for o in outs]


def _sgemm_runner(mkn):
    """numpy's float32 matmul [M, K] x [K, N]; its BLAS's threads are set by the parent (_blas_env)."""
    M, K, N = mkn
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((M, K), dtype=np.float32), rng.standard_normal((K, N), dtype=np.float32)
    return (lambda: (a @ b,)), (lambda outs: list(outs))


def _blas_env(threads: int) -> dict:
    n = str(threads or os.cpu_count())
    return dict(os.environ, OPENBLAS_NUM_THREADS=n, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n)


def _blas_name() -> str:
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except (AttributeError, KeyError, TypeError):
        return "numpy's BLAS"


def worker(args) -> None:
    shape = tuple(int(s) for s in args.worker_shape.split(","))
    if args.method == "sgemm":
        run, to_numpy = _sgemm_runner(shape)
    elif args.method == "torch":
        run, to_numpy = _torch_runner(args.op, shape, args.device, args.threads)
    else:
        run, to_numpy = _ort_runner(args.op, shape, args.method, args.device, args.threads)
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
    np.savez(args.out, *to_numpy(out))
    print(
        json.dumps(
            dict(
                median_ms=1e3 * statistics.median(times),
                min_ms=1e3 * min(times),
                peak_mb=peak / 1024,
                gpu_peak_mb=gpu_peak,
            )
        )
    )


def measure(op, shape, method, args, tmp: Path) -> dict:
    """Runs one method (or 'sgemm', shape then being M, K, N) in its own subprocess."""
    out = tmp / f"{method}.npz"
    cmd = [
        sys.executable,
        __file__,
        "--op",
        op,
        "--worker-shape",
        ",".join(map(str, shape)),
        "--method",
        method,
        "--runs",
        str(args.runs),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_blas_env(args.threads))
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
        return dict(error=tail[0][:120])
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(out) as z:
        res["out"] = [z[k] for k in z.files]
    return res


def max_rel_diff(outs: list, refs: list) -> float:
    """The largest, over outputs, of max |out - ref| / max |ref|."""
    return max(
        float(np.abs(o - r.astype(np.float64)).max() / max(np.abs(r).max(), 1e-30)) if r.size else 0.0
        for o, r in zip(outs, refs)
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--op", choices=[*OPS, "all"], help="op to benchmark (default: all, or STGraphAttention with --shape)"
    )
    ap.add_argument(
        "--shape",
        action="append",
        help="the op's sizes, comma-separated (repeatable): STGraphAttention "
        "B,H,T,P,d,D; EdgeGraphAttention B,H,N,d; GaussianDiffGraphAttention B,H,T,K,d (N = T*K)",
    )
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

    if args.shape and args.op == "all":
        ap.error("--shape needs one --op (the layouts differ)")
    ops = list(OPS) if args.op in (None, "all") and not args.shape else [args.op or "STGraphAttention"]
    methods = args.methods.split(",")
    print(
        f"finsta ops on {args.device}, {os.cpu_count()} cores, threads={args.threads or 'all'}, "
        f"median of {args.runs} runs after {args.warmup} warm-up; peak = resident-set growth while running; "
        f"max rel diff = against the custom kernel, over all outputs"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for op in ops:
            spec = OPS[op]
            shapes = [tuple(int(s) for s in sh.split(",")) for sh in args.shape] if args.shape else spec.default_shapes
            for shape in shapes:
                if len(shape) != len(spec.shape_names.split(",")) + spec.shape_names.count("*"):
                    ap.error(f"{op} takes --shape {spec.shape_names.replace('*', ',')}, got {shape}")
            print(f"\n{op}")
            hdr = (
                f"{spec.shape_names:<22} {'method':<9} {'median ms':>10} {'peak MB':>9} {'time/custom':>12} "
                f"{'max rel diff':>13}" + (f" {'GFLOP/s':>8}" if spec.flops else "")
            )
            print(hdr)
            print("-" * len(hdr))
            for shape in shapes:
                res = {m: measure(op, shape, m, args, Path(tmp)) for m in methods}
                base = res.get("custom", {})
                name = spec.label(shape)
                for m in methods:
                    r = res[m]
                    if "error" in r:
                        print(f"{name:<22} {m:<9} failed: {r['error']}")
                        continue
                    ratio = f"{r['median_ms'] / base['median_ms']:.2f}x" if "median_ms" in base else "-"
                    diff = f"{max_rel_diff(r['out'], base['out']):.1e}" if "out" in base else "-"
                    peak = r["peak_mb"] if r.get("gpu_peak_mb") is None else r["gpu_peak_mb"]
                    rate = f" {spec.flops(shape) / r['median_ms'] / 1e6:>8.1f}" if spec.flops else ""
                    print(f"{name:<22} {m:<9} {r['median_ms']:>10.2f} {peak:>9.1f} {ratio:>12} {diff:>13}{rate}")
                if spec.sgemm and args.device == "cpu" and "median_ms" in base:
                    mkn = spec.sgemm(shape)
                    g = measure(op, mkn, "sgemm", args, Path(tmp))
                    if "error" in g:
                        print(f"{'':<22} sgemm failed: {g['error']}")
                        continue
                    sgemm_rate = 2.0 * np.prod(mkn, dtype=np.float64) / g["median_ms"] / 1e6
                    custom_rate = spec.flops(shape) / base["median_ms"] / 1e6
                    print(
                        f"{'':<22} sgemm {'x'.join(map(str, mkn))} ({_blas_name()}, threads={args.threads or 'all'}): "
                        f"{g['median_ms']:.2f} ms = {sgemm_rate:.1f} GFLOP/s; custom at {100 * custom_rate / sgemm_rate:.0f}%"
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
