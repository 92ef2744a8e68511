"""finsta_rt imports and runs a custom-op model in a process where torch cannot be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import reference
from helpers import st_graph_attention_model

BLOCK_TORCH = textwrap.dedent(
    """
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
    sys.meta_path.insert(0, _NoTorch())
    """
)


def test_finsta_rt_without_torch(tmp_path):
    model_path = tmp_path / "sga.onnx"
    model_path.write_bytes(st_graph_attention_model(tokens_per_frame=4, sim_threshold=0.2).SerializeToString())
    rng = np.random.default_rng()
    feeds = dict(
        x=rng.standard_normal((2, 12, 5)).astype(np.float32),
        **{n: rng.standard_normal((2, 3, 12, 8)).astype(np.float32) for n in "qkv"},
    )
    np.savez(tmp_path / "feeds.npz", **feeds)
    script = BLOCK_TORCH + textwrap.dedent(
        f"""
        try:
            import torch
        except ImportError:
            pass
        else:
            raise SystemExit("torch was importable")
        import numpy as np, onnxruntime as ort
        import finsta_rt
        so = ort.SessionOptions()
        finsta_rt.register(so)
        feeds = dict(np.load({str(tmp_path / "feeds.npz")!r}))
        out = ort.InferenceSession({str(model_path)!r}, so, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        np.save({str(tmp_path / "out.npy")!r}, out)
        assert "torch" not in sys.modules
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = np.load(tmp_path / "out.npy")
    ref = reference.st_graph_attention(**feeds, P=4, r=1, tau=0.2)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_runtime_dependencies_exclude_torch():
    from importlib.metadata import requires

    runtime = [r for r in requires("finsta-rt") if "extra ==" not in r]
    assert runtime and not any(r.lower().startswith("torch") for r in runtime), runtime


def test_every_runtime_module_and_the_cli_load_without_torch():
    """Each module of finsta_rt (the scene-graph parser, user graphs, ground and scenes included)
    imports, and `finsta-rt --help` runs, where torch cannot be imported."""
    import pkgutil

    import finsta_rt

    modules = sorted(m.name for m in pkgutil.iter_modules(finsta_rt.__path__) if not m.name.startswith("_"))
    assert {"model", "scene_graph", "user_graph", "ground", "scenes", "cli"} <= set(modules)
    script = BLOCK_TORCH + textwrap.dedent(
        f"""
        import importlib, sys
        for name in {modules!r}:
            importlib.import_module("finsta_rt." + name)
        from finsta_rt.cli import main
        try:
            main(["--help"])
        except SystemExit as e:
            assert e.code == 0, e.code
        assert "torch" not in sys.modules
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "ground" in proc.stdout and "scenes" in proc.stdout
