"""Memory safety and input validation of the finsta op kernels (issue 14).

Each case runs one finsta node in a fresh Python process (``run_isolated``), so a kernel that
crashes or aborts fails its test instead of killing pytest; the cases that once crashed also run
against the ASan/UBSan build (``make ops-asan``). Valid cases are compared with the float64
references of tests/reference.py. The non-finite policy checked here (docs/ops.md): a NaN or an
infinity in a float input is never refused and never swallowed; it reaches, as NaN or inf, every
output that depends on it through an edge (only what the op's definition maps to a finite value,
such as EdgeGraphAttention's clip of an infinite logit to ±clamp, gives finite values).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import reference
import yaml
from helpers import fresh_seed, large_clamp_feeds, max_rel_err, one_node_model
from onnx import TensorProto, helper

from finsta_rt import op_check, ops
from finsta_rt.bundle import Bundle, BundleError
from finsta_rt.model import Model

ROOT = Path(__file__).resolve().parents[1]
ASAN_LIB_DIR = ROOT / "build" / "asan" / "finsta_rt" / "_lib"
SEED = fresh_seed()
TOL = 1e-5
OUTPUTS = {"STGraphAttention": ["out"], "EdgeGraphAttention": ["h", "e_out"], "GaussianDiffGraphAttention": ["out"]}
INPUTS = {
    "STGraphAttention": ["x", "q", "k", "v"],
    "EdgeGraphAttention": ["q", "k", "v", "e", "adj"],
    "GaussianDiffGraphAttention": ["q", "k", "v", "pos", "adj", "sigma"],
}

# Runs in the child: one unranked finsta node (the kernel's own checks meet every input), the
# outputs saved to out.npz or the ORT error written to error.txt.
_WORKER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    from onnx import TensorProto, helper
    sys.path.insert(0, sys.argv[2])
    from helpers import one_node_model, session
    d = Path(sys.argv[1])
    spec = json.loads((d / "spec.json").read_text())
    feeds = dict(np.load(d / "feeds.npz"))
    ins = [(n, helper.np_dtype_to_tensor_dtype(feeds[n].dtype), None) for n in spec["inputs"]]
    outs = [(n, TensorProto.FLOAT, None) for n in spec["outputs"]]
    try:
        res = session(one_node_model(spec["op"], ins, outs, **spec["attrs"]), threads=2).run(None, feeds)
    except Exception as e:
        (d / "error.txt").write_text(str(e))
    else:
        np.savez(d / "out.npz", *res)
""")


def sanitizer_env() -> dict[str, str]:
    """The environment that loads the ASan/UBSan library into python (as tests/test_sanitizers.py)."""

    def lib(name: str) -> str:
        return subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()

    return dict(
        LD_PRELOAD=f"{lib('libasan.so')} {lib('libstdc++.so')}",
        ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1",
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
        FINSTA_OPS_DIR=str(ASAN_LIB_DIR),
    )


def run_isolated(tmp_path: Path, op: str, attrs: dict, feeds: dict[str, np.ndarray], build: str = "release"):
    """Runs one node in a child process; returns ("ok", outputs) or ("error", ORT's message). A crash
    (signal, sanitizer report) fails the calling test with the child's stderr."""
    env = dict(os.environ)
    if build == "asan":
        if not (ASAN_LIB_DIR / "libfinsta_ops.so").is_file():
            pytest.fail(f"missing {ASAN_LIB_DIR}: run `make ops-asan`")
        env.update(sanitizer_env())
    (tmp_path / "spec.json").write_text(json.dumps(dict(op=op, attrs=attrs, inputs=INPUTS[op], outputs=OUTPUTS[op])))
    np.savez(tmp_path / "feeds.npz", **feeds)
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER, str(tmp_path), str(ROOT / "tests")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    at = max(proc.stderr.find("ERROR: AddressSanitizer"), proc.stderr.find("runtime error"), 0)
    assert proc.returncode == 0, f"{op} {attrs} crashed (status {proc.returncode}):\n{proc.stderr[at : at + 3000]}"
    if (tmp_path / "error.txt").is_file():
        return "error", (tmp_path / "error.txt").read_text()
    with np.load(tmp_path / "out.npz") as z:
        return "ok", [z[f"arr_{i}"] for i in range(len(OUTPUTS[op]))]


def st_feeds(rng: np.random.Generator, B=1, T=8, P=4, H=2, d=8, D=6) -> dict[str, np.ndarray]:
    L = T * P
    x = rng.standard_normal((B, L, D)).astype(np.float32) + rng.standard_normal((B, 1, D)).astype(np.float32)
    q, k, v = (rng.standard_normal((B, H, L, d)).astype(np.float32) for _ in range(3))
    return dict(x=x, q=q, k=k, v=v)


def edge_feeds(rng: np.random.Generator, B=1, H=2, N=5, d=4, density=0.6) -> dict[str, np.ndarray]:
    q, k, v = (rng.standard_normal((B, H, N, d)).astype(np.float32) for _ in range(3))
    e = rng.standard_normal((B, H, N, N, d)).astype(np.float32)
    adj = (rng.uniform(size=(B, N, N)) < density) | np.eye(N, dtype=bool)
    return dict(q=q, k=k, v=v, e=e, adj=adj)


def gauss_feeds(rng: np.random.Generator, B=1, H=2, N=5, d=4, density=0.6) -> dict[str, np.ndarray]:
    q, k, v = (rng.standard_normal((B, H, N, d)).astype(np.float32) for _ in range(3))
    pos = rng.uniform(0, 1, (B, N, 3)).astype(np.float32)
    adj = (rng.uniform(size=(B, N, N)) < density) | np.eye(N, dtype=bool)
    sigma = rng.uniform(0.2, 1.0, (H, 3)).astype(np.float32)
    return dict(q=q, k=k, v=v, pos=pos, adj=adj, sigma=sigma)


# --- frame_radius near the int64 limit: `t + r` overflowed, the key count wrapped and the CPU
# kernel wrote past its buffers (heap-buffer-overflow; SIGABRT at T=8, silently wrong at T=2).


@pytest.mark.parametrize("build", ["release", "asan"])
@pytest.mark.parametrize("T", [8, 2])
@pytest.mark.parametrize("r", [2**63 - 1, 2**63 - 2, 2**62, 2**31 + 5])
def test_huge_frame_radius_is_clamped_to_the_clip(tmp_path, build, T, r):
    feeds = st_feeds(np.random.default_rng([SEED, T]), T=T)
    status, res = run_isolated(
        tmp_path, "STGraphAttention", dict(tokens_per_frame=4, frame_radius=r, sim_threshold=0.1), feeds, build
    )
    assert status == "ok", res
    ref = reference.st_graph_attention(**feeds, P=4, r=T - 1, tau=0.1)  # r >= T - 1: every frame is a key frame
    assert max_rel_err(res[0], ref) <= TOL, f"FINSTA_TEST_SEED={SEED}"


# --- EdgeGraphAttention with clamp >= 88: exp of the clipped logit overflowed float32 (NaN h).


def test_large_clamp_gives_the_exact_answer(tmp_path):
    feeds = large_clamp_feeds()
    status, res = run_isolated(tmp_path, "EdgeGraphAttention", dict(clamp=100.0), feeds)
    assert status == "ok", res
    np.testing.assert_allclose(res[0], 1.0, rtol=1e-6)  # h = sum w v / (sum w + 1e-6), v = 1, w = e^100


@pytest.mark.parametrize(
    "clamp,q_scale", [(88.0, 40.0), (100.0, 60.0), (300.0, 200.0), (700.0, 500.0), (100.0, -60.0), (150.0, -120.0)]
)
def test_large_clamp_matches_reference(tmp_path, clamp, q_scale):
    # q_scale < 0 with e > 0 and k > 0: every logit far below zero, the row max near -clamp
    rng = np.random.default_rng([SEED, int(clamp), int(abs(q_scale))])
    feeds = edge_feeds(rng, N=6, d=8, density=0.7)
    feeds["q"] = (np.abs(feeds["q"]) * q_scale).astype(np.float32)
    feeds["k"] = np.abs(feeds["k"])
    feeds["e"] = np.abs(feeds["e"]) + 0.5
    status, res = run_isolated(tmp_path, "EdgeGraphAttention", dict(clamp=clamp), feeds)
    assert status == "ok", res
    ref_h, ref_s = reference.edge_graph_attention(**feeds, clamp=clamp)
    assert np.all(np.isfinite(res[0])), "NaN or inf h from finite inputs"
    assert max_rel_err(res[0], ref_h) <= TOL and max_rel_err(res[1], ref_s) <= TOL, f"FINSTA_TEST_SEED={SEED}"


# --- Attributes of the wrong type were silently replaced by the default (or said "missing").

WRONG_TYPES = [
    (
        "STGraphAttention",
        dict(tokens_per_frame=4, sim_threshold=0.1, frame_radius=1.0),
        "attribute 'frame_radius' must be an int, got a float",
    ),
    (
        "STGraphAttention",
        dict(tokens_per_frame=4, sim_threshold=0.1, scale=1),
        "attribute 'scale' must be a float, got an int",
    ),
    (
        "STGraphAttention",
        dict(tokens_per_frame=4.0, sim_threshold=0.1),
        "attribute 'tokens_per_frame' must be an int, got a float",
    ),
    (
        "STGraphAttention",
        dict(tokens_per_frame=4, sim_threshold="0.1"),
        "attribute 'sim_threshold' must be a float, got a string",
    ),
    (
        "STGraphAttention",
        dict(tokens_per_frame=[4], sim_threshold=0.1),
        "attribute 'tokens_per_frame' must be an int, got a list of ints",
    ),
    ("EdgeGraphAttention", dict(clamp="5"), "attribute 'clamp' must be a float, got a string"),
    ("EdgeGraphAttention", dict(clamp=5), "attribute 'clamp' must be a float, got an int"),
    ("EdgeGraphAttention", dict(clamp=[5.0]), "attribute 'clamp' must be a float, got a list of floats"),
]


@pytest.mark.parametrize(
    "op,attrs,message", WRONG_TYPES, ids=[m.split("'")[1] + "-" + m.split()[-1] for *_, m in WRONG_TYPES]
)
def test_wrongly_typed_attribute_is_refused(tmp_path, op, attrs, message):
    rng = np.random.default_rng(0)
    feeds = st_feeds(rng) if op == "STGraphAttention" else edge_feeds(rng)
    status, res = run_isolated(tmp_path, op, attrs, feeds)
    assert status == "error" and f"{op}: {message}" in res, res


# --- Attribute names. ONNX Runtime's custom-op API (up to onnxruntime 1.31) reads an attribute by
# name only and cannot list a node's attributes, so a kernel cannot see a misspelt or extra one; the
# library's FinstaCheckModel reads the model file instead (custom_ops/common/model_check.h), called
# by finsta_rt.Model and the C++ runtime before a session exists (docs/ops.md).
UNKNOWN_NAMES = [
    ("STGraphAttention", dict(tokens_per_frame=4, sim_threshold=0.1, frame_radiuss=2), "frame_radiuss"),
    ("EdgeGraphAttention", dict(clampp=100.0), "clampp"),
    ("GaussianDiffGraphAttention", dict(clamp=5.0), "clamp"),
    ("STGraphAttention", dict(tokens_per_frame=4, sim_threshold=0.1, Scale=0.5), "Scale"),
    ("EdgeGraphAttention", dict(clamp=5.0, frame_radius=1), "frame_radius"),
]
# Every attribute each op reads, as docs/ops.md lists them: an independent copy of the op table.
KNOWN = {
    "STGraphAttention": dict(tokens_per_frame=4, frame_radius=2, sim_threshold=0.1, scale=0.5),
    "EdgeGraphAttention": dict(clamp=5.0),
    "GaussianDiffGraphAttention": {},
}
LIBRARIES = [kind for kind in ("cpu", "cuda") if (ops.library_dir() / ops._LIB_NAMES[kind]).is_file()]


def node_model(op: str, attrs: dict) -> onnx.ModelProto:
    ins = [(n, TensorProto.FLOAT, None) for n in INPUTS[op]]
    return one_node_model(op, ins, [(n, TensorProto.FLOAT, None) for n in OUTPUTS[op]], **attrs)


@pytest.mark.parametrize("kind", LIBRARIES)
@pytest.mark.parametrize("op,attrs,name", UNKNOWN_NAMES, ids=[f"{op}-{n}" for op, _, n in UNKNOWN_NAMES])
def test_unknown_attribute_is_refused(op, attrs, name, kind):
    with pytest.raises(op_check.ModelCheckError) as e:
        op_check.check_model(node_model(op, attrs).SerializeToString(), ops.library_path(kind))
    msg = str(e.value)
    assert msg.startswith(f"{op}: node ") and f"unknown attribute '{name}'" in msg, msg
    known = ", ".join(KNOWN[op]) if KNOWN[op] else None
    assert (f"(known attributes: {known})" if known else "(the op takes no attributes)") in msg, msg


@pytest.mark.parametrize("kind", LIBRARIES)
@pytest.mark.parametrize("op", KNOWN)
def test_every_known_attribute_is_accepted(op, kind, tmp_path):
    lib = ops.library_path(kind)
    model = node_model(op, KNOWN[op])
    op_check.check_model(model.SerializeToString(), lib)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    op_check.check_model(path, lib)  # the file form, as finsta_rt.Model calls it
    for name in KNOWN[op]:  # and each alone (the optional ones)
        op_check.check_model(node_model(op, {name: KNOWN[op][name]}).SerializeToString(), lib)


def test_a_twice_given_attribute_is_refused():
    model = node_model("EdgeGraphAttention", dict(clamp=5.0))
    model.graph.node[0].attribute.append(helper.make_attribute("clamp", 50.0))
    model.graph.node[0].name = "edge0"
    with pytest.raises(op_check.ModelCheckError, match="EdgeGraphAttention: node 'edge0' has attribute 'clamp' twice"):
        op_check.check_model(model.SerializeToString(), ops.library_path("cpu"))


def test_other_domains_keep_their_attributes():
    """Only finsta nodes are checked: a standard node's or another domain's attributes are ORT's business."""
    model = node_model("EdgeGraphAttention", dict(clamp=5.0))
    model.graph.node.append(helper.make_node("Identity", ["h"], ["h2"], frame_radiuss=3))
    model.graph.node.append(helper.make_node("STGraphAttention", ["h"], ["h3"], domain="other", clampp=1.0))
    op_check.check_model(model.SerializeToString(), ops.library_path("cpu"))


def _if_nested(inner: onnx.NodeProto, depth: int) -> onnx.NodeProto:
    """`inner` wrapped in `depth` If nodes (each then_branch holding the next)."""
    node = inner
    for i in range(depth):
        out = helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None)
        then = helper.make_graph([node], f"then{i}", [], [out])
        node = helper.make_node(
            "If", ["cond"], [f"y{i}"], then_branch=then, else_branch=helper.make_graph([], "e", [], [])
        )
    return node


@pytest.mark.parametrize("depth", [1, 5, 25])
def test_unknown_attribute_in_a_subgraph_or_function_is_refused(depth):
    lib = ops.library_path("cpu")
    bad = helper.make_node("EdgeGraphAttention", ["q", "k", "v", "e", "adj"], ["h", "s"], domain="finsta", clampp=1.0)
    model = node_model("EdgeGraphAttention", dict(clamp=5.0))
    model.graph.node.append(_if_nested(bad, depth))
    with pytest.raises(op_check.ModelCheckError, match=r"EdgeGraphAttention: node #\d+ has unknown attribute 'clampp'"):
        op_check.check_model(model.SerializeToString(), lib)
    fn = helper.make_function("local", "wrap", ["q", "k", "v", "e", "adj"], ["h", "s"], [bad], [])
    model = node_model("EdgeGraphAttention", dict(clamp=5.0))
    model.functions.append(fn)
    with pytest.raises(op_check.ModelCheckError, match="unknown attribute 'clampp'"):
        op_check.check_model(model.SerializeToString(), lib)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2), written by hand."""

    def varint(v: int) -> bytes:
        out = b""
        while v > 0x7F:
            out, v = out + bytes([v & 0x7F | 0x80]), v >> 7
        return out + bytes([v])

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def test_a_deep_or_broken_model_file_gives_a_clear_error():
    lib = ops.library_path("cpu")
    # 40 If nodes in then_branches: GraphProto.node (1) > NodeProto.attribute (5) > AttributeProto.g (6),
    # 120 messages deep, past protobuf's limit of 100 (onnx cannot build it, so it is written by hand)
    graph = _field(1, node_model("EdgeGraphAttention", dict(clamp=5.0)).graph.node[0].SerializeToString())
    for _ in range(40):
        graph = _field(1, _field(4, b"If") + _field(5, _field(1, b"then_branch") + _field(6, graph)))
    with pytest.raises(op_check.ModelCheckError, match="messages nested more than 100 deep"):
        op_check.check_model(_field(7, graph), lib)
    data = node_model("EdgeGraphAttention", dict(clamp=5.0)).SerializeToString()
    for broken in (data[:-3], data + b"\x0a\xff\xff\xff\xff\x0f", b"\xff" * 12, data + b"\x07"):
        with pytest.raises(op_check.ModelCheckError, match="not a valid ONNX model: the protobuf data is malformed"):
            op_check.check_model(broken, lib)


def _with_extra_attribute(good: Path, dst: Path) -> tuple[Path, str]:
    """A copy of bundle `good` whose video graph's first finsta node carries an extra attribute
    'frame_radiuss', re-signed in bundle.yaml (so that only the attribute is wrong); its op type."""
    shutil.copytree(good, dst)
    path = Bundle.load(dst).graphs["video"].path
    model = onnx.load(path)
    node = next(n for n in [*model.graph.node, *(n for f in model.functions for n in f.node)] if n.domain == "finsta")
    node.attribute.append(helper.make_attribute("frame_radiuss", 2))
    onnx.save(model, path)
    manifest = yaml.safe_load((dst / "bundle.yaml").read_text())
    manifest["files"][path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    (dst / "bundle.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return dst, node.op_type


def test_bundle_loaders_refuse_an_unknown_attribute(tiny_bundles, tmp_path):
    """finsta_rt.Model and the C++ runtime refuse the graph before ONNX Runtime runs it; the
    exporter's own bundle, every attribute known, still loads."""
    good = tiny_bundles[3]["custom"]
    Model(good, device="cpu")
    bad, op = _with_extra_attribute(good, tmp_path / "bad")
    with pytest.raises(BundleError) as e:
        Model(bad, device="cpu")
    msg = str(e.value)
    assert msg.startswith(f"{Bundle.load(bad).graphs['video'].path}: {op}: node ") and "'frame_radiuss'" in msg, msg
    selftest = ROOT / "build/runtime_build/finsta_rt_selftest"
    if not selftest.is_file():
        pytest.fail(f"missing {selftest}: build the C++ runtime with `make cpp`")
    for bundle, refused in ((good, False), (bad, True)):  # embed loads the model first, then reads its inputs
        proc = subprocess.run(
            [str(selftest), "embed", str(bundle), str(tmp_path / "out"), "nope", "1,1,1,1,3", "nope"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 1 and ("BundleError" in proc.stderr) == refused, proc.stderr
    assert f"{op}: node " in proc.stderr and "unknown attribute 'frame_radiuss'" in proc.stderr, proc.stderr


# Runs in the child, on the ASan/UBSan library: FinstaCheckModel over mutated model files (bytes
# flipped, cut, inserted, length varints blown up); prints "<cases> <refused>".
_FUZZ_WORKER = textwrap.dedent("""
    import ctypes, sys
    import numpy as np
    lib = ctypes.CDLL(sys.argv[1])
    f = lib.FinstaCheckModel
    f.argtypes, f.restype = [ctypes.c_char_p, ctypes.c_size_t], ctypes.c_char_p
    seeds = [open(p, "rb").read() for p in sys.argv[4:]]
    rng = np.random.default_rng(int(sys.argv[2]))
    refused = 0
    for i in range(int(sys.argv[3])):
        b = bytearray(seeds[i % len(seeds)])
        for _ in range(int(rng.integers(1, 6))):
            at = int(rng.integers(0, len(b)))
            how = int(rng.integers(0, 4))
            if how == 0:
                b[at] = int(rng.integers(0, 256))
            elif how == 1:
                del b[at:]
            elif how == 2:
                b[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 12))).astype(np.uint8))
            else:
                b[at:at] = b"\\xff\\xff\\xff\\xff\\x0f"
            if not b:
                break
        refused += f(bytes(b), len(b)) is not None
    print(int(sys.argv[3]), refused)
""")


def test_hostile_model_files_never_crash_the_check(tmp_path):
    """The reader is bounds-checked: mutated files under ASan/UBSan give a verdict, never a report."""
    lib = ASAN_LIB_DIR / "libfinsta_ops.so"
    if not lib.is_file():
        pytest.fail(f"missing {lib}: run `make ops-asan`")
    seeds = []
    for op in KNOWN:
        model = node_model(op, dict(KNOWN[op], **({"extra": 1} if op == "EdgeGraphAttention" else {})))
        model.graph.node.append(_if_nested(node_model(op, KNOWN[op]).graph.node[0], 3))
        seeds.append(tmp_path / f"{op}.onnx")
        onnx.save(model, seeds[-1])
    n = 3000
    proc = subprocess.run(
        [sys.executable, "-c", _FUZZ_WORKER, str(lib), str(SEED), str(n), *map(str, seeds)],
        capture_output=True,
        text=True,
        env=dict(os.environ, **sanitizer_env()),
        timeout=600,
    )
    at = max(proc.stderr.find("ERROR: AddressSanitizer"), proc.stderr.find("runtime error"), 0)
    assert proc.returncode == 0, f"FINSTA_TEST_SEED={SEED}: status {proc.returncode}\n{proc.stderr[at : at + 3000]}"
    cases, refused = map(int, proc.stdout.split())
    assert cases == n and 0 < refused <= n, proc.stdout


# --- Non-finite and extreme values of STGraphAttention's x: NaN was swallowed by the graph (a
# finite output), |x| ~ 1e20 overflowed the squared norm and dropped every edge silently.


def st_reached(L: int, P: int, r: int, bad_tokens) -> np.ndarray:
    """[L] bool: the tokens whose output depends on a bad token's edges (itself if it has another
    in-band token, and every other token within r frames of it)."""
    frame = np.arange(L) // P
    band = np.abs(frame[:, None] - frame[None, :]) <= r
    reached = np.zeros(L, bool)
    for i in bad_tokens:
        others = band[i].copy()
        others[i] = False
        reached |= others
        reached[i] |= others.any()
    return reached


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_x_reaches_the_outputs_it_touches(tmp_path, bad):
    T, P, r = 6, 3, 1
    feeds = st_feeds(np.random.default_rng([SEED, 3]), T=T, P=P)
    feeds["x"][0, 4, 2] = bad  # token 4, frame 1
    status, res = run_isolated(
        tmp_path, "STGraphAttention", dict(tokens_per_frame=P, frame_radius=r, sim_threshold=0.1), feeds
    )
    assert status == "ok", res
    reached = st_reached(T * P, P, r, [4])
    out = res[0]
    assert np.all(np.isnan(out[0][:, reached])), "a non-finite x was swallowed"
    clean = dict(feeds, x=np.where(np.isfinite(feeds["x"]), feeds["x"], 0).astype(np.float32))
    ref = reference.st_graph_attention(**clean, P=P, r=r, tau=0.1)
    assert max_rel_err(out[0][:, ~reached], ref[0][:, ~reached]) <= TOL, f"FINSTA_TEST_SEED={SEED}"


@pytest.mark.parametrize("magnitude", [1e20, 1e30, 3e37, 1e-10])
def test_extreme_x_magnitudes_keep_the_graph(tmp_path, magnitude):
    feeds = st_feeds(np.random.default_rng([SEED, 5]), T=4, P=5, D=16)
    feeds["x"] = (feeds["x"] / np.abs(feeds["x"]).max() * np.float32(magnitude)).astype(np.float32)
    status, res = run_isolated(
        tmp_path, "STGraphAttention", dict(tokens_per_frame=5, frame_radius=1, sim_threshold=0.2), feeds
    )
    assert status == "ok", res
    ref = reference.st_graph_attention(**feeds, P=5, r=1, tau=0.2)
    assert max_rel_err(res[0], ref) <= TOL, f"FINSTA_TEST_SEED={SEED} magnitude={magnitude}"


# --- The same policy for the other ops' inputs (NaN reaches the outputs through the edges).


@pytest.mark.parametrize("name", ["q", "k", "v", "e"])
def test_edge_graph_attention_propagates_nan(tmp_path, name):
    feeds = edge_feeds(np.random.default_rng([SEED, 7]), N=5, density=0.5)
    feeds["adj"][0, 1, 3] = True
    if name == "e":
        feeds["e"][0, 0, 1, 3, 0] = np.nan
    else:
        feeds[name][0, 0, 3 if name != "q" else 1, 0] = np.nan
    status, res = run_isolated(tmp_path, "EdgeGraphAttention", dict(clamp=5.0), feeds)
    assert status == "ok", res
    hit = res[0][0, 0, 1, :1] if name == "v" else res[0][0, 0, 1]  # v's NaN sits in channel 0 only
    assert np.all(np.isnan(hit)), f"NaN in {name} swallowed: h[0, 0, 1] = {res[0][0, 0, 1]}"


@pytest.mark.parametrize("name", ["q", "k", "v", "pos"])
def test_gaussian_diff_graph_attention_propagates_nan(tmp_path, name):
    feeds = gauss_feeds(np.random.default_rng([SEED, 9]), N=5, density=0.5)
    feeds["adj"][0, 1, 3] = True
    if name == "pos":
        feeds["pos"][0, 3, 0] = np.nan
    else:
        feeds[name][0, 0, 3 if name != "q" else 1, 0] = np.nan
    status, res = run_isolated(tmp_path, "GaussianDiffGraphAttention", {}, feeds)
    assert status == "ok", res
    hit = res[0][0, 0, 1, :1] if name == "v" else res[0][0, 0, 1, :4]  # v's NaN sits in channel 0 only
    assert np.all(np.isnan(hit)), f"NaN in {name} swallowed: out[0, 0, 1] = {res[0][0, 0, 1]}"


def test_infinite_logit_is_clipped_as_the_definition_says(tmp_path):
    feeds = edge_feeds(np.random.default_rng([SEED, 11]), N=4, density=1.0)
    feeds["q"][0, 0, 0, 0] = np.inf  # clip(+-inf) = +-clamp: finite weights, an infinite e_out
    status, res = run_isolated(tmp_path, "EdgeGraphAttention", dict(clamp=5.0), feeds)
    assert status == "ok", res
    ref_h, ref_s = reference.edge_graph_attention(**feeds, clamp=5.0)
    np.testing.assert_allclose(res[0], ref_h, rtol=1e-5, atol=1e-6)
    assert not np.all(np.isfinite(res[1])) and np.array_equal(np.isfinite(res[1]), np.isfinite(ref_s))
