"""Installing finsta-rt (docs/environment.md): the broken-install check of ``import finsta_rt`` and the console
scripts. Building and installing the wheel itself takes minutes, so it is shown by hand there, not run here."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import SEED, replay_hint

from finsta._entry import TORCH_SIDE
from finsta_rt._distribution import ONNXRUNTIME_DISTRIBUTIONS, BrokenInstallError, check_onnxruntime

ROOT = Path(__file__).resolve().parents[1]


def fake_distribution(site: Path, name: str, version: str) -> None:
    """A dist-info as pip writes it: the folder named by the normalised name, METADATA holding the real name."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def random_version(rng: random.Random) -> str:
    return f"1.{rng.randint(21, 40)}.{rng.randint(0, 9)}"


def test_one_or_no_onnxruntime_distribution_passes(tmp_path):
    rng = random.Random(SEED)
    check_onnxruntime(path=[str(tmp_path)])  # none here: onnxruntime's own import will say so
    fake_distribution(tmp_path, rng.choice(ONNXRUNTIME_DISTRIBUTIONS), random_version(rng))
    check_onnxruntime(path=[str(tmp_path)])


def test_two_onnxruntime_distributions_are_refused_with_the_fix(tmp_path):
    rng = random.Random(SEED)
    cpu, gpu = random_version(rng), random_version(rng)
    fake_distribution(tmp_path / "a", "onnxruntime", cpu)
    fake_distribution(tmp_path / "b", "onnxruntime-gpu", gpu)  # in another site folder: still both importable
    with replay_hint(f"onnxruntime {cpu}, onnxruntime-gpu {gpu}"):
        with pytest.raises(BrokenInstallError) as got:
            check_onnxruntime(path=[str(tmp_path / "a"), str(tmp_path / "b")])
        msg = str(got.value)
        assert f"onnxruntime {cpu}, onnxruntime-gpu {gpu}" in msg, msg
        assert "pip uninstall -y onnxruntime onnxruntime-gpu" in msg, msg
        assert f"pip install 'onnxruntime-gpu=={gpu}'" in msg and "docs/environment.md" in msg, msg


def test_any_two_builds_of_the_module_are_refused(tmp_path):
    rng = random.Random(SEED)
    names = rng.sample([n for n in ONNXRUNTIME_DISTRIBUTIONS if n != "onnxruntime-gpu"], 2)
    for name in names:
        fake_distribution(tmp_path, name, random_version(rng))
    with replay_hint(f"{names}"), pytest.raises(BrokenInstallError, match=f"2 ONNX Runtime distributions.*{names[0]}"):
        check_onnxruntime(path=[str(tmp_path)])


def run_python(code: str, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env_path = [str(extra_path)] if extra_path else []
    script = f"import sys; sys.path[:0] = {env_path!r}\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_import_refuses_onnxruntime_gpu_beside_onnxruntime(tmp_path):
    # This venv has onnxruntime; a fake onnxruntime-gpu on the path is the state `pip install 'finsta-rt[gpu]'` leaves.
    clean = run_python("import finsta_rt")
    assert clean.returncode == 0, clean.stderr
    fake_distribution(tmp_path, "onnxruntime-gpu", "1.31.1")
    broken = run_python("import finsta_rt", tmp_path)
    assert broken.returncode != 0
    last = broken.stderr.strip().splitlines()[-1]
    assert last.startswith("finsta_rt._distribution.BrokenInstallError: finsta-rt: 2 ONNX Runtime distributions"), last
    assert "onnxruntime-gpu 1.31.1" in last and "pip uninstall -y onnxruntime onnxruntime-gpu" in last, last


# The torch side absent: sys.modules[name] = None makes `import torch` raise ModuleNotFoundError(name="torch"), as a
# venv without it does (all four blocked: the commands import onnx or torch first, and onnx alone takes seconds).
NO_TORCH = f"import sys; sys.modules.update(dict.fromkeys({TORCH_SIDE!r}))\n"


@pytest.mark.parametrize(
    ("entry", "args"),
    [("train", [str(ROOT / "configs" / "stgt_synthetic.yaml")]), ("export", ["RUN"])],
)
def test_torch_side_commands_say_what_to_install_without_torch(tmp_path, entry, args):
    args = [a.replace("RUN", str(tmp_path)) for a in args]
    prog = f"finsta-{entry}"
    proc = run_python(
        NO_TORCH + f"from finsta._entry import {entry}\nsys.argv = {[prog, *args]!r}\nraise SystemExit({entry}())"
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert re.match(rf"{prog}: needs '({'|'.join(TORCH_SIDE)})', which is not installed; ", proc.stderr), proc.stderr
    assert "pip install 'finsta-rt[export]'" in proc.stderr and "download.pytorch.org/whl/cpu" in proc.stderr


def test_other_missing_modules_are_not_blamed_on_torch():
    # yaml is a runtime dependency: its absence is a broken install, not a missing extra, so it keeps its traceback.
    proc = run_python(
        "import sys; sys.modules['yaml'] = None\nfrom finsta._entry import train\n"
        "sys.argv = ['finsta-train', 'x.yaml']\nraise SystemExit(train())"
    )
    assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr and "finsta-rt[export]" not in proc.stderr


def test_console_scripts_resolve():
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"finsta-rt", "finsta-train", "finsta-export"}
    for name, target in scripts.items():
        module, attr = target.split(":")
        __import__(module)
        assert callable(getattr(sys.modules[module], attr)), (name, target)
