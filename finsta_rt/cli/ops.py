"""``finsta-rt ops``: the op libraries and the execution providers."""

from __future__ import annotations

import argparse

NAME = "ops"
HELP = "show the custom-op libraries and the execution providers"
DESCRIPTION = (
    "Show where the finsta op libraries are, their version and ops, and which ONNX Runtime execution "
    "providers this machine offers. Exit status 1 if the CPU library is missing or stale."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    from .. import __version__, ops

    providers = ", ".join(ort.get_available_providers())
    print(f"finsta-rt {__version__}, onnxruntime {ort.__version__}, providers: {providers}")
    print(f"library folder: {ops.library_dir()}  (override with {ops.ENV_DIR})")
    status = 0
    for device in ("cpu", "cuda"):
        try:
            path = ops.library_path(device)
        except ops.OpsLibraryError as e:
            print(f"  {device:<5} missing: {e}")
            status = 1 if device == "cpu" else status
            continue
        info = ops.library_info(path, path.stat().st_mtime_ns)
        print(f"  {device:<5} {path}  version {info['version']}, cuda={info.get('cuda')}, ops: {info.get('ops')}")
    return status
