"""finsta_rt.ops: finding, checking and registering the op libraries."""

from __future__ import annotations

import subprocess
from pathlib import Path

import onnxruntime as ort
import pytest

import finsta_rt
from finsta_rt import ops


def test_library_paths_exist_and_describe_themselves():
    cpu = finsta_rt.library_path("cpu")
    assert cpu.name == "libfinsta_ops.so" and cpu.is_file()
    info = ops.library_info(cpu, cpu.stat().st_mtime_ns)
    assert info["version"] == finsta_rt.__version__ and info["cuda"] == "0"
    assert "STGraphAttention" in info["ops"]
    cuda = finsta_rt.library_path("cuda:0")
    assert cuda.name == "libfinsta_ops_cuda.so"
    assert ops.library_info(cuda, cuda.stat().st_mtime_ns)["cuda"] == "1"


def test_cpu_library_has_no_cuda_or_onnxruntime_dependency():
    needed = subprocess.run(["ldd", str(finsta_rt.library_path("cpu"))], capture_output=True, text=True).stdout
    assert "cuda" not in needed and "onnxruntime" not in needed, needed
    # the CUDA library links the CUDA runtime statically: it loads where no CUDA is installed
    needed = subprocess.run(["ldd", str(finsta_rt.library_path("cuda"))], capture_output=True, text=True).stdout
    assert "libcudart" not in needed and "onnxruntime" not in needed, needed


def test_register_adds_the_domain():
    so = ort.SessionOptions()
    assert finsta_rt.register(so) == finsta_rt.library_path()


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
    with pytest.raises(finsta_rt.OpsLibraryError, match="stale finsta op library .* built for finsta-rt 0.1.0.*make ops"):
        finsta_rt.library_path("cpu")


def test_not_a_library_is_refused(monkeypatch, tmp_path):
    (tmp_path / "libfinsta_ops.so").write_bytes(b"not an ELF file")
    monkeypatch.setenv(ops.ENV_DIR, str(tmp_path))
    with pytest.raises(finsta_rt.OpsLibraryError, match="cannot load the finsta op library"):
        finsta_rt.library_path("cpu")


def test_unknown_device_is_rejected():
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda"):
        finsta_rt.library_path("tpu")


def test_library_is_installed_where_the_package_looks():
    assert Path(ops.__file__).parent / "_lib" == ops.library_dir()
