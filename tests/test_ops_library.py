"""finsta_rt.ops: finding, checking and registering the op libraries."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import reference
from helpers import st_graph_attention_model

import finsta_rt
from finsta_rt import ops

ROOT = Path(__file__).resolve().parents[1]


def test_library_paths_exist_and_describe_themselves():
    cpu = finsta_rt.library_path("cpu")
    assert cpu.name == "libfinsta_ops.so" and cpu.is_file()
    info = ops.library_info(cpu, cpu.stat().st_mtime_ns)
    assert info["version"] == finsta_rt.__version__ and info["cuda"] == "0"
    assert "STGraphAttention" in info["ops"]
    cuda = finsta_rt.library_path("cuda:0")
    assert cuda.name == "libfinsta_ops_cuda.so"
    assert ops.library_info(cuda, cuda.stat().st_mtime_ns)["cuda"] == "1"


def test_library_reports_its_op_table():
    for device in ("cpu", "cuda"):
        path = finsta_rt.library_path(device)
        info = ops.library_info(path, path.stat().st_mtime_ns)
        assert (info["domain"], info["opset"]) == (finsta_rt.OPS_DOMAIN, str(finsta_rt.OPS_VERSION)), info
        assert info["ops"].split(",") == ["STGraphAttention", "EdgeGraphAttention", "GaussianDiffGraphAttention"], info


def test_library_of_another_domain_is_refused(monkeypatch):
    real = ops.library_info
    monkeypatch.setattr(ops, "library_info", lambda p, m=0: {**real(p, m), "domain": "finsta2"})
    with pytest.raises(
        finsta_rt.OpsLibraryError, match="registers domain 'finsta2' version '1', finsta-rt expects 'finsta'"
    ):
        finsta_rt.library_path("cpu")


def test_library_that_does_not_report_its_domain_is_refused(monkeypatch):
    real = ops.library_info
    strip = lambda p, m=0: {k: v for k, v in real(p, m).items() if k not in ("domain", "opset")}  # noqa: E731
    monkeypatch.setattr(ops, "library_info", strip)
    with pytest.raises(
        finsta_rt.OpsLibraryError, match="stale finsta op library .* does not report its domain .*make ops"
    ):
        finsta_rt.library_path("cpu")


def test_cpu_library_has_no_cuda_or_onnxruntime_dependency():
    needed = subprocess.run(["ldd", str(finsta_rt.library_path("cpu"))], capture_output=True, text=True).stdout
    assert "cuda" not in needed and "onnxruntime" not in needed, needed
    # the CUDA library links the CUDA runtime statically: it loads where no CUDA is installed
    needed = subprocess.run(["ldd", str(finsta_rt.library_path("cuda"))], capture_output=True, text=True).stdout
    assert "libcudart" not in needed and "onnxruntime" not in needed, needed


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_library_exports_only_its_entry_points(device):
    """Hidden visibility for C++ and CUDA objects alike: an app that links other code with the same
    symbol names (e.g. another build of our kernels) must not get ours."""
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(finsta_rt.library_path(device))], capture_output=True, text=True, check=True
    ).stdout
    text_symbols = sorted(line.split()[-1] for line in out.splitlines() if line.split()[1:2] == ["T"])
    assert text_symbols == ["FinstaCheckModel", "FinstaOpsInfo", "RegisterCustomOps"], text_symbols


def _st_model():
    return st_graph_attention_model(tokens_per_frame=2, frame_radius=0, sim_threshold=-1.0)


def test_register_adds_the_domain():
    # Without the library ORT knows no finsta domain; after register a finsta node runs, and on the
    # library's own CPU kernel (its own error words for a bad input, which no other kernel has).
    with pytest.raises(Exception, match="finsta"):
        ort.InferenceSession(_st_model().SerializeToString(), providers=["CPUExecutionProvider"])
    so = ort.SessionOptions()
    assert finsta_rt.register(so) == finsta_rt.library_path()
    sess = ort.InferenceSession(_st_model().SerializeToString(), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4, 3)).astype(np.float32)
    q, k, v = (rng.standard_normal((1, 2, 4, 8)).astype(np.float32) for _ in range(3))
    out = sess.run(None, dict(x=x, q=q, k=k, v=v))[0]
    assert np.abs(out - reference.st_graph_attention(x, q, k, v, P=2, r=0, tau=-1.0)).max() < 1e-5
    with pytest.raises(Exception, match="STGraphAttention: L=3 tokens is not a multiple of tokens_per_frame=2"):
        sess.run(None, dict(x=x[:, :3], q=q[:, :, :3], k=k[:, :, :3], v=v[:, :, :3]))


def test_missing_library_says_how_to_build(monkeypatch, tmp_path):
    monkeypatch.setenv(ops.ENV_DIR, str(tmp_path))
    with pytest.raises(finsta_rt.OpsLibraryError, match="not found at .*make ops"):
        finsta_rt.library_path("cpu")
    with pytest.raises(finsta_rt.OpsLibraryError, match="make ops"):
        finsta_rt.register(ort.SessionOptions(), "cuda")


def test_override_dir_is_used(monkeypatch, tmp_path):
    src = finsta_rt.library_path("cpu")
    (tmp_path / src.name).write_bytes(src.read_bytes())
    monkeypatch.setenv(ops.ENV_DIR, str(tmp_path))
    assert finsta_rt.library_path("cpu") == tmp_path / src.name


def test_stale_library_is_refused(monkeypatch):
    monkeypatch.setattr(finsta_rt, "__version__", "99.0.0")
    with pytest.raises(
        finsta_rt.OpsLibraryError, match="stale finsta op library .* built for finsta-rt 0.1.0.*make ops"
    ):
        finsta_rt.library_path("cpu")


def test_not_a_library_is_refused(monkeypatch, tmp_path):
    (tmp_path / "libfinsta_ops.so").write_bytes(b"not an ELF file")
    monkeypatch.setenv(ops.ENV_DIR, str(tmp_path))
    with pytest.raises(finsta_rt.OpsLibraryError, match="cannot load the finsta op library"):
        finsta_rt.library_path("cpu")


def test_unknown_device_is_rejected():
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda"):
        finsta_rt.library_path("tpu")


def test_library_is_installed_where_the_package_looks(monkeypatch):
    # `make ops` installs into finsta_rt/_lib (CMake's install DESTINATION); without FINSTA_OPS_DIR
    # the package finds the libraries there, and the one it finds is the build's own output.
    monkeypatch.delenv(ops.ENV_DIR, raising=False)
    cmake = (ROOT / "custom_ops" / "CMakeLists.txt").read_text()
    assert cmake.count("LIBRARY DESTINATION finsta_rt/_lib") == 2, "both libraries install into finsta_rt/_lib"
    found = finsta_rt.library_path("cpu")
    assert found.parent.resolve() == (ROOT / "finsta_rt" / "_lib").resolve()
    manifest = (ROOT / "build" / "custom_ops" / "install_manifest.txt").read_text().split()
    assert str(found.resolve()) in {str(Path(m).resolve()) for m in manifest}, manifest
