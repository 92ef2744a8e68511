#!/usr/bin/env python3
"""Fuzz the finsta CPU kernels through ONNX Runtime (issue 14).

Random valid and invalid shapes, dtypes, attribute values and attribute types, NaN and inf values,
for all three ops. Every case is a pure function of (--seed, its index), so a printed case replays.
Cases run in worker subprocesses (a crash kills only the worker; the parent counts it and starts a
new worker at the next case). Verdicts:

  valid       finite, well-formed inputs: the outputs must equal the float64 reference (tests/reference.py)
  invalid     a bad shape, dtype, attribute value or type, sigma or self-loop: ORT must raise an error
  nonfinite   a NaN (or, in STGraphAttention's x, an inf) in a float input: it must reach, as NaN,
              every output that depends on it through an edge (docs/ops.md), or be refused

    python benchmarks/fuzz_ops.py --n 100000            # the release library (finsta_rt/_lib)
    python benchmarks/fuzz_ops.py --n 10000 --asan      # the ASan/UBSan library (make ops-asan)
    python benchmarks/fuzz_ops.py --replay 1234         # run case 1234 in this process, print it

Misspelt or extra attribute names are fuzzed too: ORT's custom-op API cannot show them to a kernel,
so each case's model goes through the loaders' model check first (finsta_rt.op_check, as
finsta_rt.Model does before its sessions; docs/ops.md), which must refuse them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
ASAN_LIB_DIR = ROOT / "build" / "asan" / "finsta_rt" / "_lib"
TOL = 1e-4
OPS = ("STGraphAttention", "EdgeGraphAttention", "GaussianDiffGraphAttention")
INPUTS = {
    "STGraphAttention": ("x", "q", "k", "v"),
    "EdgeGraphAttention": ("q", "k", "v", "e", "adj"),
    "GaussianDiffGraphAttention": ("q", "k", "v", "pos", "adj", "sigma"),
}
OUTPUTS = {"STGraphAttention": ("out",), "EdgeGraphAttention": ("h", "e_out"), "GaussianDiffGraphAttention": ("out",)}
BIG = [2**63 - 1, 2**63 - 2, 2**62, 2**31, 2**31 - 1]


# --- Case generation -------------------------------------------------------------------------


def _f32(rng: np.random.Generator, shape, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _adjacency(rng: np.random.Generator, B: int, N: int) -> np.ndarray:
    adj = rng.uniform(size=(B, N, N)) < rng.uniform(0, 1)
    adj[:, np.arange(N), np.arange(N)] = True
    return adj


def _st_valid(rng: np.random.Generator) -> tuple[dict, dict]:
    B, H, T, P = (int(rng.integers(lo, hi)) for lo, hi in ((0, 3), (1, 4), (1, 7), (1, 6)))
    d, D = int(rng.integers(1, 17)), int(rng.integers(1, 13))
    if rng.uniform() < 0.05:  # empty tensors
        B, d = (0, d) if rng.uniform() < 0.5 else (B, 0)
    L = T * P
    mag = float(rng.choice([1.0, 1.0, 1.0, 1e20, 3e37, 1e-8, 1e-30]))
    x = _f32(rng, (B, L, D)) + _f32(rng, (B, 1, D), float(rng.uniform(0, 2)))
    x = (x * np.float32(mag)).astype(np.float32)
    if L > 1 and rng.uniform() < 0.2:
        x[:, int(rng.integers(L))] = 0  # a zero token
    feeds = dict(x=x, q=_f32(rng, (B, H, L, d)), k=_f32(rng, (B, H, L, d)), v=_f32(rng, (B, H, L, d)))
    r = int(rng.choice([0, 1, 2, 3, 10, *BIG])) if rng.uniform() < 0.9 else None  # None: the default, 1
    attrs: dict[str, Any] = dict(tokens_per_frame=P, sim_threshold=float(rng.choice([-2.0, -0.5, 0.0, 0.3, 0.7, 1.5])))
    if r is not None:
        attrs["frame_radius"] = r
    if rng.uniform() < 0.3:
        attrs["scale"] = float(rng.choice([0.1, 0.5, 2.0]))
    return feeds, attrs


def _edge_valid(rng: np.random.Generator) -> tuple[dict, dict]:
    B, H, N, d = (int(rng.integers(lo, hi)) for lo, hi in ((0, 3), (1, 4), (1, 10), (1, 17)))
    if rng.uniform() < 0.05:
        N = 0
    qs = float(rng.choice([1.0, 1.0, 5.0, 30.0, -30.0]))
    feeds = dict(
        q=_f32(rng, (B, H, N, d), qs),
        k=_f32(rng, (B, H, N, d)),
        v=_f32(rng, (B, H, N, d)),
        e=_f32(rng, (B, H, N, N, d)),
        adj=_adjacency(rng, B, N),
    )
    attrs = {} if rng.uniform() < 0.2 else dict(clamp=float(rng.choice([0.5, 5.0, 20.0, 88.0, 100.0, 300.0, 700.0])))
    return feeds, attrs


def _gauss_valid(rng: np.random.Generator) -> tuple[dict, dict]:
    B, H, N, d = (int(rng.integers(lo, hi)) for lo, hi in ((0, 3), (1, 4), (1, 10), (1, 17)))
    if rng.uniform() < 0.05:
        N = 0
    feeds = dict(
        q=_f32(rng, (B, H, N, d)),
        k=_f32(rng, (B, H, N, d)),
        v=_f32(rng, (B, H, N, d)),
        pos=rng.uniform(-2, 2, (B, N, 3)).astype(np.float32),
        adj=_adjacency(rng, B, N),
        sigma=rng.uniform(0.05, 2.0, (H, 3)).astype(np.float32),
    )
    return feeds, {}


VALID = {"STGraphAttention": _st_valid, "EdgeGraphAttention": _edge_valid, "GaussianDiffGraphAttention": _gauss_valid}

# Attribute mutations that must be refused: (op, name, value); None deletes a required attribute.
BAD_ATTRS = [
    ("STGraphAttention", "tokens_per_frame", 0),
    ("STGraphAttention", "tokens_per_frame", -3),
    ("STGraphAttention", "tokens_per_frame", None),
    ("STGraphAttention", "tokens_per_frame", 4.0),
    ("STGraphAttention", "tokens_per_frame", "4"),
    ("STGraphAttention", "tokens_per_frame", [4]),
    ("STGraphAttention", "tokens_per_frame", -(2**63)),
    ("STGraphAttention", "frame_radius", -1),
    ("STGraphAttention", "frame_radius", -(2**63)),
    ("STGraphAttention", "frame_radius", 1.0),
    ("STGraphAttention", "frame_radius", "1"),
    ("STGraphAttention", "frame_radius", [1, 2]),
    ("STGraphAttention", "sim_threshold", None),
    ("STGraphAttention", "sim_threshold", float("nan")),
    ("STGraphAttention", "sim_threshold", 1),
    ("STGraphAttention", "sim_threshold", "0.1"),
    ("STGraphAttention", "sim_threshold", [0.1]),
    ("STGraphAttention", "scale", 0.0),
    ("STGraphAttention", "scale", -1.0),
    ("STGraphAttention", "scale", float("inf")),
    ("STGraphAttention", "scale", float("nan")),
    ("STGraphAttention", "scale", 1),
    ("STGraphAttention", "scale", "1"),
    ("EdgeGraphAttention", "clamp", 0.0),
    ("EdgeGraphAttention", "clamp", -5.0),
    ("EdgeGraphAttention", "clamp", float("inf")),
    ("EdgeGraphAttention", "clamp", float("nan")),
    ("EdgeGraphAttention", "clamp", 5),
    ("EdgeGraphAttention", "clamp", "5"),
    ("EdgeGraphAttention", "clamp", [5.0]),
    # unknown names (misspelt, another op's, any on GaussianDiffGraphAttention)
    ("STGraphAttention", "frame_radiuss", 2),
    ("STGraphAttention", "Scale", 0.5),
    ("STGraphAttention", "clamp", 5.0),
    ("EdgeGraphAttention", "clampp", 100.0),
    ("EdgeGraphAttention", "frame_radius", 1),
    ("GaussianDiffGraphAttention", "clamp", 5.0),
    ("GaussianDiffGraphAttention", "scale", 1.0),
]


def _mutate_input(rng: np.random.Generator, op: str, feeds: dict) -> str:
    """Makes one input invalid in place (a new array); returns what was done."""
    names = INPUTS[op]
    name = str(rng.choice(names))
    a = feeds[name]
    kind = str(rng.choice(["rank_up", "rank_down", "dim", "dtype"]))
    if name == "adj" and rng.uniform() < 0.4 and a.shape[1] > 0 and a.shape[0] > 0:
        a = a.copy()
        n = int(rng.integers(a.shape[1]))
        a[int(rng.integers(a.shape[0])), n, n] = False
        feeds[name] = a
        return "adj lacks a self-loop"
    if name == "sigma" and rng.uniform() < 0.5 and a.size:
        a = a.copy()
        a.flat[int(rng.integers(a.size))] = float(rng.choice([0.0, -1.0, np.nan, np.inf]))
        feeds[name] = a
        return "bad sigma value"
    if kind == "rank_up":
        feeds[name] = a[None]
    elif kind == "rank_down":
        feeds[name] = a.reshape(-1) if a.ndim > 1 else a.reshape(1, -1)
    elif kind == "dim":
        axis = int(rng.integers(a.ndim))
        shape = list(a.shape)
        shape[axis] += int(rng.integers(1, 3))
        feeds[name] = np.zeros(shape, a.dtype) if a.dtype == bool else rng.standard_normal(shape).astype(a.dtype)
        if name == "adj":
            feeds[name][..., np.arange(min(shape[-2:])), np.arange(min(shape[-2:]))] = True
    else:
        dt = np.dtype(
            str(
                rng.choice(
                    ["float64", "float16", "int32", "int64", "uint8"]
                    if a.dtype != bool
                    else ["uint8", "float32", "int64"]
                )
            )
        )
        feeds[name] = a.astype(dt)
    return f"{name}: {kind}"


def _nan_target(rng: np.random.Generator, op: str, feeds: dict) -> tuple[str, tuple, float] | None:
    """Where to put a non-finite value: (input, index, value); None if the inputs are empty."""
    names = [n for n in INPUTS[op] if n not in ("adj", "sigma") and feeds[n].size]
    if not names:
        return None
    name = str(rng.choice(names))
    idx = tuple(int(rng.integers(s)) for s in feeds[name].shape)
    value = float(rng.choice([np.nan, np.inf, -np.inf])) if (op, name) == ("STGraphAttention", "x") else np.nan
    return name, idx, value


def make_case(seed: int, index: int) -> dict:
    """Case `index` of the run `seed`: op, feeds, attrs, kind and what was mutated."""
    rng = np.random.default_rng([seed, index])
    op = OPS[index % 3]
    feeds, attrs = VALID[op](rng)
    u = rng.uniform()
    kind, what = "valid", ""
    if u < 0.2:
        bad = [b for b in BAD_ATTRS if b[0] == op]
        if bad:
            _, name, value = bad[int(rng.integers(len(bad)))]
            attrs = dict(attrs)
            if value is None:
                attrs.pop(name, None)
            else:
                attrs[name] = value
            kind, what = "invalid", f"attribute {name}={value!r}"
    elif u < 0.45:
        what = _mutate_input(rng, op, feeds)
        kind = "invalid"
    elif u < 0.6:
        target = _nan_target(rng, op, feeds)
        if target:
            name, idx, value = target
            feeds[name] = feeds[name].copy()
            feeds[name][idx] = value
            kind, what = "nonfinite", f"{name}{list(idx)} = {value}"
    return dict(op=op, feeds=feeds, attrs=attrs, kind=kind, what=what)


# --- Checking --------------------------------------------------------------------------------


def _still_valid(case: dict) -> bool:
    """A mutated input may still be valid (x's feature size D is free in STGraphAttention)."""
    f = case["feeds"]
    return (
        case["op"] == "STGraphAttention"
        and case["what"] == "x: dim"
        and f["x"].ndim == 3
        and f["x"].shape[:2] == (f["q"].shape[0], f["q"].shape[2])
    )


def _reference(op: str, feeds: dict, attrs: dict) -> list[np.ndarray]:
    import reference

    if op == "STGraphAttention":
        P = attrs["tokens_per_frame"]
        T = feeds["x"].shape[1] // P
        r = min(attrs.get("frame_radius", 1), max(T - 1, 0))
        if feeds["q"].size == 0 or feeds["x"].shape[1] == 0:
            return [np.zeros(feeds["q"].shape)]
        return [reference.st_graph_attention(**feeds, P=P, r=r, tau=attrs["sim_threshold"], scale=attrs.get("scale"))]
    if op == "EdgeGraphAttention":
        if feeds["q"].shape[2] == 0:
            return [np.zeros(feeds["q"].shape), np.zeros(feeds["e"].shape)]
        return list(reference.edge_graph_attention(**feeds, clamp=attrs.get("clamp", 5.0)))
    B, H, N, d = feeds["q"].shape
    if N == 0:
        return [np.zeros((B, H, N, 2 * d))]
    return [reference.gaussian_diff_graph_attention(**feeds)]


def _ambiguous_threshold(feeds: dict, attrs: dict) -> bool:
    """True when an in-band similarity lies within 1e-4 of tau (float32 rounding decides the edge)."""
    import reference

    x = feeds["x"]
    if x.size == 0:
        return False
    P = attrs["tokens_per_frame"]
    T = x.shape[1] // P
    r = min(attrs.get("frame_radius", 1), max(T - 1, 0))
    _, S = reference.st_graph_attention_edges(x, P, r, attrs["sim_threshold"])
    return bool(np.any(np.abs(S - attrs["sim_threshold"]) < 1e-4))


def _reached(case: dict) -> list[np.ndarray]:
    """Per output, the entries a non-finite input must reach (bool masks)."""
    import reference

    op, f, attrs = case["op"], case["feeds"], case["attrs"]
    name = case["what"].split("[")[0]
    idx = tuple(json.loads(case["what"][len(name) :].split(" = ")[0]))
    if op == "STGraphAttention":
        B, H, L, d = f["q"].shape
        P = attrs["tokens_per_frame"]
        r = min(attrs.get("frame_radius", 1), max(L // P - 1, 0))
        m = np.zeros((B, H, L, d), bool)
        frame = np.arange(L) // P
        band = np.abs(frame[:, None] - frame[None, :]) <= r
        if name == "x":
            b, i = idx[0], idx[1]
            others = band[i].copy()
            others[i] = False
            m[b, :, others] = True
            m[b, :, i] = others.any()
            return [m]
        clean = {k: np.nan_to_num(v) for k, v in f.items()}
        A, _ = reference.st_graph_attention_edges(clean["x"], P, r, attrs["sim_threshold"])
        b, h, j, c = idx
        if name == "q":
            m[b, h, j] = True
        else:
            rows = A[b][:, j] != 0
            if name == "k":
                m[b, h, rows] = True
            else:
                m[b, h, rows, c] = True
        return [m]
    adj = f["adj"]
    if op == "EdgeGraphAttention":
        B, H, N, d = f["q"].shape
        h_mask, e_mask = np.zeros((B, H, N, d), bool), np.zeros((B, H, N, N, d), bool)
        if name == "q":
            b, h, i, c = idx
            h_mask[b, h, i] = True
            e_mask[b, h, i, :, c] = True
        elif name == "k":
            b, h, j, c = idx
            h_mask[b, h, adj[b][:, j]] = True
            e_mask[b, h, :, j, c] = True
        elif name == "v":
            b, h, j, c = idx
            h_mask[b, h, adj[b][:, j], c] = True
        else:
            b, h, i, j, c = idx
            h_mask[b, h, i] = bool(adj[b, i, j])
            e_mask[b, h, i, j, c] = True
        return [h_mask, e_mask]
    B, H, N, d = f["q"].shape
    m = np.zeros((B, H, N, 2 * d), bool)
    if name == "q":
        b, h, i, _ = idx
        m[b, h, i] = True
    elif name == "k":
        b, h, j, _ = idx
        m[b, h, adj[b][:, j]] = True
    elif name == "v":
        b, h, j, c = idx
        m[b, h, adj[b][:, j], c] = True
        m[b, h, j, d + c] = True
    else:  # pos of node j: every row with the edge (i, j), j's own row through its self-loop
        b, j, _ = idx
        m[b, :, adj[b][:, j]] = True
    return [m]


def verdict(case: dict, status: str, outs: list[np.ndarray] | None) -> str:
    """One of: match, mismatch, valid_refused, refused, silent, propagated, swallowed, skipped."""
    kind = case["kind"]
    if kind == "invalid" and _still_valid(case):
        kind = "valid"
    if kind == "invalid":
        return "refused" if status == "error" else "silent"
    if kind == "nonfinite":
        if status == "error":
            return "refused"
        return "propagated" if all(np.all(~np.isfinite(o[m])) for o, m in zip(outs, _reached(case))) else "swallowed"
    if status == "error":
        return "valid_refused"
    if case["op"] == "STGraphAttention" and _ambiguous_threshold(case["feeds"], case["attrs"]):
        return "skipped"
    refs = _reference(case["op"], case["feeds"], case["attrs"])
    for out, ref in zip(outs, refs):
        if out.shape != ref.shape or not np.all(np.isfinite(out)):
            return "mismatch"
        if ref.size:
            err = np.max(np.abs(out.astype(np.float64) - ref)) / max(float(np.max(np.abs(ref))), 1e-30)
            if not err <= TOL:
                return "mismatch"
    return "match"


# --- Running ---------------------------------------------------------------------------------

_SESSIONS: dict[str, Any] = {}


def run_case(case: dict) -> tuple[str, list[np.ndarray] | None, str]:
    """Runs one case in this process: ("ok", outputs, "") or ("error", None, message)."""
    from helpers import one_node_model, session
    from onnx import TensorProto, helper

    from finsta_rt import op_check, ops

    op, feeds, attrs = case["op"], case["feeds"], case["attrs"]
    ins = [(n, helper.np_dtype_to_tensor_dtype(feeds[n].dtype), None) for n in INPUTS[op]]
    key = repr((op, sorted(attrs.items()), [t for _, t, _ in ins]))
    try:
        if key not in _SESSIONS:
            if len(_SESSIONS) > 256:
                _SESSIONS.clear()
            outs = [(n, TensorProto.FLOAT, None) for n in OUTPUTS[op]]
            model = one_node_model(op, ins, outs, **attrs)
            op_check.check_model(model.SerializeToString(), ops.library_path("cpu"))  # as finsta_rt.Model
            _SESSIONS[key] = session(model, threads=1)
        return "ok", _SESSIONS[key].run(None, feeds), ""
    except Exception as e:  # the model check's or ORT's error for this case (at session creation or run)
        _SESSIONS.pop(key, None)
        return "error", None, str(e)


def worker(seed: int, start: int, stop: int) -> None:
    """Runs cases start..stop-1, one JSON line per case on stdout (flushed before the next runs)."""
    for i in range(start, stop):
        case = make_case(seed, i)
        print(json.dumps({"i": i, "start": True}), flush=True)
        status, outs, msg = run_case(case)
        v = verdict(case, status, outs)
        print(
            json.dumps(
                {"i": i, "verdict": v, "op": case["op"], "kind": case["kind"], "what": case["what"], "msg": msg[:300]}
            ),
            flush=True,
        )


def sanitizer_env() -> dict[str, str]:
    def lib(name: str) -> str:
        return subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()

    return dict(
        LD_PRELOAD=f"{lib('libasan.so')} {lib('libstdc++.so')}",
        ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1",
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
        FINSTA_OPS_DIR=str(ASAN_LIB_DIR),
    )


def fuzz(n: int, seed: int, asan: bool = False, chunk: int = 2000, timeout: float = 3600) -> dict:
    """Runs cases 0..n-1 in worker subprocesses; returns the counts and the failing cases."""
    env = dict(os.environ)
    if asan:
        if not (ASAN_LIB_DIR / "libfinsta_ops.so").is_file():
            raise SystemExit(f"missing {ASAN_LIB_DIR}: run `make ops-asan`")
        env.update(sanitizer_env())
    counts: dict[str, int] = {}
    failures: list[dict] = []
    crashes: list[dict] = []
    i = 0
    t0 = time.monotonic()
    while i < n:
        stop = min(n, i + chunk)
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", "--seed", str(seed), "--start", str(i), "--stop", str(stop)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        last_started, done = None, i
        for line in proc.stdout.splitlines():
            if not line.startswith('{"i": '):
                continue  # not a record (a library that prints to stdout)
            rec = json.loads(line)
            if rec.get("start"):
                last_started = rec["i"]
                continue
            done = rec["i"] + 1
            counts[rec["verdict"]] = counts.get(rec["verdict"], 0) + 1
            if rec["verdict"] in ("mismatch", "valid_refused", "silent", "swallowed"):
                failures.append(rec)
        if proc.returncode != 0:
            at = last_started if last_started is not None else done
            err = proc.stderr
            asan_report = "ERROR: AddressSanitizer" in err or "runtime error:" in err
            counts["crash"] = counts.get("crash", 0) + 1
            if asan_report:
                counts["sanitizer_report"] = counts.get("sanitizer_report", 0) + 1
            pos = max(err.find("ERROR: AddressSanitizer"), err.find("runtime error:"))
            crashes.append(
                {"i": at, "status": proc.returncode, "stderr": err[pos : pos + 2000] if pos >= 0 else err[-1500:]}
            )
            done = at + 1
        i = done
    lib_dir = env.get("FINSTA_OPS_DIR") or str(ROOT / "finsta_rt" / "_lib")
    return dict(
        n=n,
        seed=seed,
        asan=asan,
        lib_dir=lib_dir,
        seconds=round(time.monotonic() - t0, 1),
        counts=counts,
        failures=failures,
        crashes=crashes,
    )


def print_table(res: dict) -> None:
    c = res["counts"]
    valid = c.get("match", 0) + c.get("mismatch", 0) + c.get("valid_refused", 0)
    rows = [
        ("calls", res["n"]),
        ("crashes (worker died)", c.get("crash", 0)),
        ("ASan/UBSan reports", c.get("sanitizer_report", 0)),
        ("invalid inputs refused with an ORT error", c.get("refused", 0)),
        ("invalid inputs accepted silently", c.get("silent", 0)),
        ("non-finite inputs propagated", c.get("propagated", 0)),
        ("non-finite inputs swallowed", c.get("swallowed", 0)),
        (f"valid cases equal to the float64 reference (rel. err <= {TOL:g})", c.get("match", 0)),
        ("valid cases that mismatch", c.get("mismatch", 0)),
        ("valid cases refused", c.get("valid_refused", 0)),
        ("valid cases skipped (a similarity within 1e-4 of tau)", c.get("skipped", 0)),
    ]
    lib = f"library folder {res['lib_dir']}" + (" (ASan/UBSan)" if res["asan"] else "")
    print(f"finsta op fuzz: seed {res['seed']}, {lib}, {res['seconds']} s, {valid} valid cases")
    w = max(len(r[0]) for r in rows)
    for name, val in rows:
        print(f"  {name:<{w}}  {val:>8}")
    for f in res["failures"][:20]:
        print(f"  FAIL case {f['i']} ({f['op']}, {f['kind']}, {f['what']}): {f['verdict']} {f['msg'][:200]}")
    for cr in res["crashes"][:5]:
        print(f"  CRASH case {cr['i']} (status {cr['status']}):\n{cr['stderr'][:1500]}")
    if res["failures"] or res["crashes"]:
        print(f"  replay one: python benchmarks/fuzz_ops.py --seed {res['seed']} --replay CASE")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="number of calls")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--asan", action="store_true", help="the ASan/UBSan library (make ops-asan)")
    ap.add_argument("--chunk", type=int, default=2000, help="cases per worker process")
    ap.add_argument("--json", type=Path, help="also write the result here")
    ap.add_argument("--replay", type=int, help="run one case in this process and print it")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--stop", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.seed, a.start, a.stop)
        return
    if a.replay is not None:
        case = make_case(a.seed, a.replay)
        print(
            case["op"],
            case["kind"],
            case["what"],
            case["attrs"],
            {k: (v.shape, str(v.dtype)) for k, v in case["feeds"].items()},
        )
        status, outs, msg = run_case(case)
        print(status, msg, verdict(case, status, outs))
        return
    res = fuzz(a.n, a.seed, a.asan, a.chunk)
    print_table(res)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    bad = sum(res["counts"].get(k, 0) for k in ("crash", "mismatch", "valid_refused", "silent", "swallowed"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
