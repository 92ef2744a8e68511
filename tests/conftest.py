import functools
import os
import sys
from pathlib import Path

# tests import `reference` and `helpers` as plain modules
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

import pytest  # noqa: E402

# The session fixtures that export bundles: each is exported once per run, by whichever pytest-xdist worker
# needs it first, into a folder all workers share (build_once); they are not xdist groups, so the tests that
# use them spread over the workers (grouped, they pulled 157 tests of 12 files onto one worker).
BUILT_ONCE = frozenset({"tiny_bundles", "finsta_bundles", "svilm_bundles", "real_bundle"})


def _distributing(config: pytest.Config) -> bool:
    """Whether this process is pytest-xdist's controller, which runs no test itself."""
    if hasattr(config, "workerinput"):
        return False
    return config.getoption("dist", "no") != "no" and bool(config.getoption("tx", None))


def pytest_configure(config: pytest.Config) -> None:
    # torch's and numpy's BLAS threads (read from OMP_NUM_THREADS when loaded): the cores shared among
    # the processes that run tests, at most 2. Set here, not at import, so that the controller (which
    # runs nothing) leaves it unset for each worker to choose; ORT sessions size their own pools.
    if not _distributing(config):
        workers = config.workerinput["workercount"] if hasattr(config, "workerinput") else 1
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, min(2, len(os.sched_getaffinity(0)) // workers))))
    from helpers import SEED  # after OMP_NUM_THREADS: helpers loads numpy

    # One seed for the whole run: xdist's workers (and the pytest/python children some tests start)
    # inherit it instead of drawing their own, so the printed seed replays every process's cases.
    os.environ["FINSTA_TEST_SEED"] = str(SEED)


def pytest_report_header(config: pytest.Config) -> str:
    from helpers import SEED

    return f"FINSTA_TEST_SEED={SEED} (set it to replay this run's random cases)"


# --------------------------------------------------------------------------- pytest-xdist groups


def _shared_fixtures(item: pytest.Item) -> list[str]:
    """The tests' own session-, package- and module-scoped fixtures ``item`` uses (module ones keyed by
    file, a parametrised one by its parameter): the expensive state that should be built once."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    indices = getattr(getattr(item, "callspec", None), "indices", {})
    keys = []
    for name in item.fixturenames:
        defs = info.name2fixturedefs.get(name)
        if not defs or defs[-1].scope == "function":
            continue
        code = getattr(defs[-1].func, "__code__", None)
        if code is None or TESTS not in Path(code.co_filename).resolve().parents:
            continue  # pytest's own (tmp_path_factory, ...) and plugins' fixtures
        if name in BUILT_ONCE:
            continue  # shared through the disk by every worker
        key = name if defs[-1].scope in ("session", "package") else f"{item.nodeid.split('::')[0]}:{name}"
        if name in indices:
            key += f"-{indices[name]}"  # no ']' or '@': xdist's loadgroup parses the group name out of the node id
        keys.append(key)
    return keys


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``-n N --dist loadgroup``, the tests that share an expensive fixture (an exported bundle, a
    loaded backbone) run on one worker, so that it is built once, not once per worker (plain ``-n 2``
    exported every bundle on both workers): a test's group is the connected set of tests linked
    through such fixtures (union-find), named by its smallest key, the same on every worker."""
    if not config.getoption("loadgroup", False):  # what xdist sets on a worker of --dist loadgroup
        return
    from _pytest.nodeid import NodeId

    parent: dict[str, str] = {}

    def root(k: str) -> str:
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    keys = [_shared_fixtures(item) for item in items]
    for ks in keys:
        for k in ks[1:]:
            a, b = root(ks[0]), root(k)
            if a != b:
                parent[max(a, b)] = min(a, b)
    for item, ks in zip(items, keys, strict=True):
        if ks and "@" not in item.nodeid.rpartition("]")[2]:
            # xdist 3.8 appends "@group" to item._nodeid, which pytest 9 no longer reads: do it here
            item._id = NodeId.parse(f"{item.nodeid}@{root(ks[0])}")


def _fingerprint(*modules) -> str:
    """SHA-256 of the modules' parameters and buffers: the workers rebuild the towers from the same seed and
    must get the same numbers as the worker that exported them."""
    import hashlib

    h = hashlib.sha256()
    for m in modules:
        for k, v in m.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _export(video, text, spec, out_dir: Path, **kw) -> None:
    from finsta.export.bundle import export_bundle

    export_bundle(video, text, spec, out_dir=out_dir, **kw)


def _build_part(shared: Path, name: str, part: str, fingerprint: str, build, wait: bool) -> bool:
    """Build ``shared/name/part`` unless built; False if another worker holds it and ``wait`` is False."""
    import fcntl
    import shutil

    root, stamp = shared / name / part, shared / f"{name}-{part}.fingerprint"
    with open(shared / f"{name}-{part}.lock", "w") as lock:
        try:  # the lock is released when the file closes, also if this worker dies
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        if stamp.exists():
            if stamp.read_text() != fingerprint:
                raise AssertionError(f"{name}: this worker's towers differ from those exported in {root}")
            return True
        shutil.rmtree(root, ignore_errors=True)  # a build that failed half-way
        build(root)
        stamp.write_text(fingerprint)
    return True


def build_once(tmp_path_factory, name: str, fingerprint: str, parts: dict) -> dict[str, Path]:
    """{part: folder} where ``parts[part](folder)`` filled each folder once per run for all pytest-xdist workers
    (under file locks in the base temp folder they share); the others reuse it. A worker takes the parts no
    other worker is building first, so two workers that need the same fixture export its flavours side by
    side. A worker whose towers differ from the exporter's (``fingerprint``) fails instead of comparing
    against another model's bundle."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "built_once"
    (shared / name).mkdir(parents=True, exist_ok=True)
    todo = dict(parts)
    while todo:
        part = next((p for p in todo if _build_part(shared, name, p, fingerprint, todo[p], wait=False)), None)
        if part is None:  # every part left is being built by another worker: wait for the first
            part = next(iter(todo))
            _build_part(shared, name, part, fingerprint, todo[part], wait=True)
        del todo[part]
    return {p: shared / name / p for p in parts}


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory):
    """Both flavours of an STGT bundle on the small test backbones (untrained heads), exported once."""
    from test_bundle import tiny_towers

    video, text, spec = tiny_towers()

    parts = {fl: functools.partial(_export, video, text, spec, flavour=fl) for fl in ("custom", "portable")}
    return video, text, spec, build_once(tmp_path_factory, "tiny_bundles", _fingerprint(video, text), parts)


@pytest.fixture(scope="session")
def finsta_bundles(tmp_path_factory):
    """Both flavours of a tiny Finsta bundle (test_finsta_bundle.finsta_towers), exported once."""
    from test_finsta_bundle import finsta_towers

    from finsta.families.finsta import graphs

    video, text, scorer, spec = finsta_towers()

    parts = {
        fl: functools.partial(_export, video, text, spec, flavour=fl, scorer=scorer, graphs=graphs)
        for fl in ("custom", "portable")
    }
    return (
        video,
        text,
        scorer,
        spec,
        build_once(tmp_path_factory, "finsta_bundles", _fingerprint(video, text, scorer), parts),
    )


@pytest.fixture(scope="session")
def real_bundle(tmp_path_factory):
    """An STGT bundle on the real pretrained backbones (EfficientNet-Lite0, MiniLM-L6), untrained
    heads: for parity on real frames and real-video behaviour. Exported once per session."""
    import torch

    from finsta.export.bundle import ExportSpec
    from finsta.models.stgt import STGTConfig, STGTHeads
    from finsta.models.towers import TextTower, VideoTower
    from finsta.train.config import TrainConfig
    from finsta.train.features import build_backbones

    torch.manual_seed(0)
    bb = build_backbones(TrainConfig())
    cfg = STGTConfig(
        backbone_dim=bb.frame.out_dim,
        text_dim=bb.text.out_dim,
        grid=tuple(bb.frame.grid),
        frames=8,
        dim=128,
        heads=4,
        queries=4,
        embed_dim=64,
    )
    heads = STGTHeads(cfg)
    video, text = VideoTower(bb.encoder, heads.video).eval(), TextTower(bb.text, heads.text).eval()
    spec = ExportSpec(
        "stgt",
        "real",
        bb.preprocess,
        bb.text.config.vocab_file,
        bb.tokenizer.lowercase,
        bb.tokenizer.max_length,
        cfg.to_dict(),
    )

    parts = {"stgt": functools.partial(_export, video, text, spec)}
    return video, text, spec, build_once(tmp_path_factory, "real_bundle", _fingerprint(video, text), parts)["stgt"]


@pytest.fixture(scope="session")
def svilm_bundles(tmp_path_factory):
    """Both flavours of a tiny S-ViLM bundle (untrained heads), exported once per session."""
    from test_svilm_bundle import tiny_svilm_towers

    from finsta.families.svilm import graphs

    video, text, spec, heads = tiny_svilm_towers()

    parts = {
        fl: functools.partial(_export, video, text, spec, flavour=fl, graphs=graphs) for fl in ("custom", "portable")
    }
    return video, text, spec, build_once(tmp_path_factory, "svilm_bundles", _fingerprint(video, text), parts)
