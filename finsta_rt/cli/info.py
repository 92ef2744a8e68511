"""``finsta-rt info BUNDLE``: what a bundle holds, its files verified."""

from __future__ import annotations

import argparse

from ._common import printable

NAME = "info"
HELP = "show what a bundle holds (and verify its files)"
DESCRIPTION = (
    "Load a bundle, verify every file's sha256, and print its family, flavour, precision, preprocessing, tokenizer, "
    "required custom ops and graph signatures."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="bundle directory (holding bundle.yaml)")


def run(args: argparse.Namespace) -> int:
    from ..bundle import Bundle

    b = Bundle.load(args.bundle)
    m = b.manifest
    p = b.preprocess
    exporter = m.get("exporter") or {}
    lines = [
        f"bundle    {b.root}  (all {len(b.files)} files pass their sha256 check)",
        f"name      {b.name}   family {b.family}   flavour {b.flavour}   precision {b.precision}   "
        f"format {m['format_version']}",
        f"exporter  {exporter.get('name')} {exporter.get('version')}, created {m.get('created')}",
        f"frames    T={p.frames} ({p.sampling}), {p.size}x{p.size} {p.colour} {p.dtype}, resize {p.resize} "
        f"({p.interpolation}), mean {list(p.mean)}, std {list(p.std)}",
    ]
    t = b.tokenizer_spec
    files = " + ".join(f.name for f in t.files)
    lines.append(f"tokenizer {t.kind}, {files}, lowercase={t.lowercase}, max_length={t.max_length}")
    if isinstance(exporter.get("precision"), dict):  # how the precision pass converted each graph
        for g, how in exporter["precision"].items():
            lines.append(f"precision {g}: {how}")
    need = "required" if b.requires_op_library else "optional (portable functions included)"
    if not any(op["ops"] for op in b.custom_ops):
        lines.append("ops       none: standard ONNX only")
    for op in b.custom_ops:
        lines.append(f"ops       domain {op['domain']} v{op['version']}: {', '.join(op['ops'])}  [{need}]")
    for g in b.graphs.values():

        def sig(specs):
            return ", ".join(f"{s.name} {s.dtype}{s.shape}" for s in specs)

        lines.append(f"graph     {g.name:<6} {g.path.name}: ({sig(g.inputs)}) -> ({sig(g.outputs)})")
    print("\n".join(printable(line) for line in lines))
    return 0
