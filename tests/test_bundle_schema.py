"""bundle.yaml validation against hostile manifests: every wrong type or shape is a BundleError naming
the key, the file's size and nesting are bounded before parsing, YAML aliases are refused, and the
family is any plain name. Fake bundles (stub files with correct sha256s) keep this torch-free and fast:
Bundle.load never opens the ONNX files."""

from __future__ import annotations

import copy
import hashlib
import time
from pathlib import Path

import pytest
import yaml

from finsta_rt.bundle import MAX_MANIFEST_BYTES, MAX_NESTING, Bundle, BundleError

FILES = {"video.onnx": b"video", "text.onnx": b"text", "scorer.onnx": b"scorer", "vocab.txt": b"[PAD]\n[UNK]\n"}


def _spec(name: str, dtype: str, shape: list) -> dict:
    return {"name": name, "dtype": dtype, "shape": shape}


MANIFEST = {
    "format": "finsta-bundle",
    "format_version": 1,
    "name": "fake",
    "family": "stgt",
    "flavour": "custom",
    "exporter": {"name": "finsta-export", "version": "0.1.0", "torch": "2.13.0+cpu", "opset": 18},
    "created": "2026-12-01T20:00:39+00:00",
    "preprocess": {
        "size": 64,
        "resize": "shorter_side_then_center_crop",
        "interpolation": "bilinear",
        "mean": [127.5, 127.5, 127.5],
        "std": [127.5, 127.5, 127.5],
        "colour": "RGB",
        "dtype": "uint8",
        "frames": 4,
        "sampling": "uniform",
    },
    "tokenizer": {"kind": "wordpiece", "vocab": "vocab.txt", "lowercase": True, "max_length": 32},
    "custom_ops": [{"domain": "finsta", "version": 1, "ops": ["STGraphAttention"], "required": True}],
    "graphs": {
        "video": {
            "file": "video.onnx",
            "inputs": [_spec("frames", "uint8", ["B", "T", 64, 64, 3])],
            "outputs": [
                _spec("video_embedding", "float32", ["B", 4, 32]),
                _spec("video_global", "float32", ["B", 32]),
                _spec("video_tokens", "float32", ["B", "T*9", 64]),
            ],
        },
        "text": {
            "file": "text.onnx",
            "inputs": [_spec("input_ids", "int64", ["B", "S"]), _spec("attention_mask", "int64", ["B", "S"])],
            "outputs": [_spec("text_embedding", "float32", ["B", 32])],
        },
        "scorer": {
            "file": "scorer.onnx",
            "inputs": [
                _spec("video_embedding", "float32", ["Nv", 4, 32]),
                _spec("text_embedding", "float32", ["Nt", 32]),
            ],
            "outputs": [_spec("scores", "float32", ["Nt", "Nv"])],
        },
    },
    "model": {"dim": 64, "grid": [4, 4]},
    "files": {},
}


def fake_bundle(root: Path, edit=None, raw: str | bytes | None = None, text_edit=None) -> Path:
    """A bundle directory with stub files; ``edit(manifest)`` changes the manifest, ``text_edit(yaml text)``
    its YAML text, ``raw`` replaces bundle.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    m = copy.deepcopy(MANIFEST)
    for name, data in FILES.items():
        (root / name).write_bytes(data)
        m["files"][name] = hashlib.sha256(data).hexdigest()
    if edit is not None:
        edit(m)
    if raw is None:
        raw = yaml.safe_dump(m, sort_keys=False)
        raw = text_edit(raw) if text_edit else raw
    (root / "bundle.yaml").write_bytes(raw.encode() if isinstance(raw, str) else raw)
    return root


def test_fake_bundle_loads(tmp_path):
    b = Bundle.load(fake_bundle(tmp_path / "b"))
    assert b.family == "stgt" and b.graphs["video"].inputs[0].shape == ["B", "T", 64, 64, 3]
    assert b.custom_ops == [{"domain": "finsta", "version": 1, "ops": ["STGraphAttention"], "required": True}]


def _set(path: str, value):
    """An edit setting the manifest key at ``path`` ("a.b[0].c") to ``value``."""

    def edit(m):
        keys = path.replace("[", ".[").split(".")
        node = m
        for k in keys[:-1]:
            node = node[int(k[1:-1])] if k.startswith("[") else node[k]
        last = keys[-1]
        if last.startswith("["):
            node[int(last[1:-1])] = value
        else:
            node[last] = value

    return edit


def _pop(path: str):
    def edit(m):
        *parents, last = path.split(".")
        node = m
        for k in parents:
            node = node[k]
        node.pop(last)

    return edit


# (edit, the key path the message must name)
BAD_VALUES = [
    (_set("graphs.video.inputs[0].shape", 5), r"graphs\.video\.inputs\[0\]\.shape"),
    (_set("graphs.video.inputs[0].shape", [2, -1]), r"graphs\.video\.inputs\[0\]\.shape\[1\]"),
    (_set("graphs.video.inputs[0].shape", [2, 1.5]), r"graphs\.video\.inputs\[0\]\.shape\[1\]"),
    (_set("graphs.video.inputs[0].shape", [True]), r"graphs\.video\.inputs\[0\]\.shape\[0\]"),
    (_set("graphs.video.inputs[0].shape", [10**30]), r"graphs\.video\.inputs\[0\]\.shape\[0\]"),
    (_set("graphs.video.inputs[0].dtype", "float128"), r"graphs\.video\.inputs\[0\]\.dtype"),
    (_set("graphs.video.inputs[0].name", ["frames"]), r"graphs\.video\.inputs\[0\]\.name"),
    (_set("graphs.video.inputs", {"name": "frames"}), r"graphs\.video\.inputs"),
    (_set("graphs.video.inputs[0]", "frames"), r"graphs\.video\.inputs\[0\]"),
    (_set("graphs.video.outputs", []), r"graphs\.video\.outputs"),
    (_set("graphs.video.file", 7), r"graphs\.video\.file"),
    (_set("graphs.video", "video.onnx"), r"graphs\.video"),
    (_set("graphs", ["video"]), r"graphs"),
    (_set("custom_ops[0].ops", [["STGraphAttention"]]), r"custom_ops\[0\]\.ops\[0\]"),
    (_set("custom_ops[0].ops", "STGraphAttention"), r"custom_ops\[0\]\.ops"),
    (_set("custom_ops[0].domain", None), r"custom_ops\[0\]\.domain"),
    (_set("custom_ops[0].version", "1"), r"custom_ops\[0\]\.version"),
    (_set("custom_ops", {"domain": "finsta"}), r"custom_ops"),
    (_set("format_version", True), r"format_version"),
    (_set("format_version", "1"), r"format_version"),
    (_set("family", ["stgt"]), r"family"),
    (_set("family", "../stgt"), r"family"),
    (_set("family", ""), r"family"),
    (_set("name", {"a": 1}), r"name"),
    (_set("flavour", 3), r"flavour"),
    (_set("preprocess", [64]), r"preprocess"),
    (_set("preprocess.mean", "abc"), r"preprocess\.mean"),
    (_set("preprocess.mean", [1, 2]), r"preprocess\.mean"),
    (_set("preprocess.size", "64"), r"preprocess\.size"),
    (_set("preprocess.frames", 2.5), r"preprocess\.frames"),
    (_set("preprocess.bogus", 1), r"preprocess\.bogus"),
    (_set("tokenizer.max_length", "32"), r"tokenizer\.max_length"),
    (_set("tokenizer.max_length", 0), r"tokenizer\.max_length"),
    (_set("tokenizer.lowercase", "no"), r"tokenizer\.lowercase"),
    (_set("tokenizer.vocab", ["vocab.txt"]), r"tokenizer\.vocab"),
    (_set("tokenizer", "wordpiece"), r"tokenizer"),
    (_set("files", ["video.onnx"]), r"files"),
    (lambda m: m["files"].update({"video.onnx": 5}), r"files\.video\.onnx"),
    (lambda m: m["files"].update({"vocab.txt": "not-a-digest"}), r"files\.vocab\.txt"),
    (_set("exporter", "finsta-export"), r"exporter"),
    (_set("model", [1, 2]), r"model"),
    (_pop("graphs.text"), r"graphs\.text"),
    (_set("preprocess.mean", [0.5, 10**400, 0.5]), r"preprocess\.mean must be a list of 3 numbers"),  # OverflowError
    (_set("preprocess.std", [float("nan"), 1.0, 1.0]), r"preprocess\.std must be a list of 3 numbers"),
    (_set("preprocess.std", [1.0, float("inf"), 1.0]), r"preprocess\.std must be a list of 3 numbers"),
]


@pytest.mark.parametrize("case", range(len(BAD_VALUES)))
def test_wrong_type_or_shape_names_the_key(tmp_path, case):
    edit, key = BAD_VALUES[case]
    root = fake_bundle(tmp_path / "b", edit)
    with pytest.raises(BundleError, match=key) as e:
        Bundle.load(root)
    assert "bundle.yaml" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("family", ["clip", "my-family_2", "stgt.v2"])
def test_a_family_is_any_plain_name(tmp_path, family):
    """What a bundle can do comes from its graphs' inputs and outputs, not from a closed list of families."""
    assert Bundle.load(fake_bundle(tmp_path / "b", _set("family", family))).family == family


RAW = {
    "empty": ("", "expected a mapping"),
    "only_a_comment": ("# nothing\n", "expected a mapping"),
    "a_list": ("- 1\n- 2\n", "expected a mapping"),
    "a_string": ("hello\n", "expected a mapping"),
    "python_tag": ("!!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
    "not_utf8": (b"format: \xff\xfe\n", "not valid YAML|UTF-8"),
    "nested_brackets": ("[" * 100_000, "nested deeper than"),
    "nested_braces": ("{a: " * 100_000, "nested deeper than"),
    "nested_block_lists": ("- " * 100_000 + "x\n", "nested deeper than"),
    "alias": ("a: &x [1, 2]\nb: *x\n", "alias"),
    "billion_laughs": (
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)),
        "alias",
    ),
    "non_string_key": ("1: x\nformat: finsta-bundle\n", "key"),
}


@pytest.mark.parametrize("name", list(RAW))
def test_hostile_yaml_is_refused_quickly(tmp_path, name):
    raw, message = RAW[name]
    root = fake_bundle(tmp_path / "b", raw=raw)
    t0 = time.monotonic()
    with pytest.raises(BundleError, match=message) as e:
        Bundle.load(root)
    assert time.monotonic() - t0 < 5, "refusing a hostile bundle.yaml took too long"
    assert "bundle.yaml" in str(e.value)


def test_alias_in_a_real_manifest_is_refused(tmp_path):
    """`custom_ops[0].ops` as an alias of another list: refused (bundles are written without aliases)."""

    def alias(text: str) -> str:
        out = text.replace("model:\n", "anchors: &ops [[STGraphAttention]]\nmodel:\n").replace(
            "  ops:\n  - STGraphAttention\n", "  ops: *ops\n"
        )
        assert "*ops" in out
        return out

    with pytest.raises(BundleError, match="alias"):
        Bundle.load(fake_bundle(tmp_path / "b", text_edit=alias))


def test_size_limit_is_checked_before_parsing(tmp_path):
    """A 50 MB list took 203 s and 3.9 GB to parse: anything over the limit is refused unread."""
    raw = "format: finsta-bundle\nx:\n" + "- 1\n" * (MAX_MANIFEST_BYTES // 4 + 10)
    root = fake_bundle(tmp_path / "b", raw=raw)
    t0 = time.monotonic()
    with pytest.raises(BundleError, match="larger than"):
        Bundle.load(root)
    assert time.monotonic() - t0 < 1


def test_nesting_just_inside_the_limit_parses(tmp_path):
    """The depth bound refuses hostile nesting, not a real manifest: MAX_NESTING levels still parse
    and one more level does not."""
    deep = "[" * (MAX_NESTING - 2) + "]" * (MAX_NESTING - 2)
    b = fake_bundle(tmp_path / "b", text_edit=lambda t: t.replace("model:\n", f"model:\n  deep: {deep}\n", 1))
    assert isinstance(Bundle.load(b).manifest["model"]["deep"], list)  # the model section is free-form
    deeper = "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1)
    b = fake_bundle(tmp_path / "c", text_edit=lambda t: t.replace("model:\n", f"model:\n  deep: {deeper}\n", 1))
    with pytest.raises(BundleError, match="nested deeper than"):
        Bundle.load(b)


def test_unreadable_manifest(tmp_path):
    root = fake_bundle(tmp_path / "b")
    (root / "bundle.yaml").unlink()
    (root / "bundle.yaml").mkdir()
    with pytest.raises(BundleError, match="bundle.yaml"):
        Bundle.load(root)


def test_an_impossible_date_is_not_valid_yaml(tmp_path):
    """PyYAML turns 2026-13-45 into a ValueError while constructing the date; the loader names the file."""
    root = fake_bundle(
        tmp_path / "b", text_edit=lambda t: t.replace("format_version:", "created: 2026-13-45\nformat_version:")
    )
    with pytest.raises(BundleError, match=r"bundle\.yaml: not valid YAML: month must be in 1\.\.12"):
        Bundle.load(root)


def test_preprocess_refuses_a_nan_std():
    """NaN slipped through min(std) <= 0 (every comparison with NaN is False)."""
    from finsta_rt.preprocess import Preprocess

    with pytest.raises(ValueError, match="std > 0"):
        Preprocess(size=64, std=(float("nan"), 1.0, 1.0))
