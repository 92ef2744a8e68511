"""The public API of finsta_rt: every exported name resolves to its module's object, importing the
package stays light, finsta_rt.extract is both the submodule and the extraction entry point, every
CLI command follows one pattern, and library code builds no argparse parser."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import finsta_rt

ROOT = Path(finsta_rt.__file__).resolve().parent


def test_import_finsta_rt_stays_light():
    code = (
        "import sys, finsta_rt; heavy = [m for m in ('numpy', 'onnxruntime', 'av', 'yaml', 'torch') "
        "if m in sys.modules]; print(heavy); assert not heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(finsta_rt._EXPORTS))
def test_every_export_is_its_modules_object(name):
    module = importlib.import_module(f"finsta_rt.{finsta_rt._EXPORTS[name]}")
    assert getattr(finsta_rt, name) is getattr(module, name)
    assert name in finsta_rt.__all__ and name in dir(finsta_rt)


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        finsta_rt.nope  # noqa: B018


def test_extract_is_the_submodule_and_the_entry_point(monkeypatch):
    import finsta_rt.extract as module

    assert finsta_rt.extract is module and callable(module) and module.read_manifest
    calls = []
    monkeypatch.setattr(module, "extract", lambda *a, **k: calls.append((a, k)) or "summary")
    assert finsta_rt.extract("model", ["a.mp4"], "out", batch_size=2) == "summary"
    assert calls == [(("model", ["a.mp4"], "out"), {"batch_size": 2})]


def test_every_cli_command_follows_one_pattern():
    from finsta_rt import cli

    names = set()
    for command in cli.COMMANDS:
        for attr in ("NAME", "HELP", "DESCRIPTION", "add_arguments", "run"):
            assert hasattr(command, attr), (command.__name__, attr)
        names.add(command.NAME)
    files = {m.name for m in pkgutil.iter_modules(cli.__path__) if not m.name.startswith("_")}
    assert len(files) == len(cli.COMMANDS) == len(names), (files, names)


def test_library_code_builds_no_argparse_parser():
    uses = re.compile(r"^\s*(import|from) argparse\b|ArgumentParser\(|add_argument\(", re.M)
    files = [p for p in ROOT.rglob("*.py") if "cli" not in p.relative_to(ROOT).parts]
    assert len(files) > 10
    offenders = [str(p.relative_to(ROOT)) for p in files if uses.search(p.read_text())]
    assert not offenders, offenders
