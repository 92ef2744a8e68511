import functools
import os
import sys
from pathlib import Path

# tests import `reference` and `helpers` as plain modules
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

import pytest  # noqa: E402


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
        if name in _SHARED:  # the bundles exported once per run into a folder all workers share (build_once):
            continue  # not xdist groups, so their tests spread over the workers (grouped: 157 tests on one worker)
        key = name if defs[-1].scope in ("session", "package") else f"{item.nodeid.split('::')[0]}:{name}"
        if name in indices:
            key += f"-{indices[name]}"  # no ']' or '@': xdist's loadgroup parses the group name out of the node id
        keys.append(key)
    return keys


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """The shared bundles the tests of this run use (after -k / -m deselection): build_once helps with these."""
    _NEEDED.update(name for item in session.items for name in getattr(item, "fixturenames", ()) if name in _SHARED)


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


FLAVOURS = ("custom", "portable")


def _export(video, text, spec, root: Path, flavours: tuple[str, ...] = FLAVOURS, **kw) -> None:
    """The bundles of ``flavours`` in root/FLAVOUR, from one trace (finsta.export.bundle.export_bundles)."""
    from finsta.export.bundle import export_bundles

    export_bundles(video, text, spec, {fl: root / fl for fl in flavours}, **kw)


def _build(shared: Path, name: str, make, wait: bool) -> bool:
    """Build ``shared/name`` unless built; False if another worker holds it and ``wait`` is False. ``make()`` ->
    (fingerprint, build(folder)) runs only once the lock is held (building towers costs seconds)."""
    import fcntl
    import shutil

    root, stamp = shared / name, shared / f"{name}.fingerprint"
    with open(shared / f"{name}.lock", "w") as lock:
        try:  # the lock is released when the file closes, also if this worker dies
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        fingerprint, build = make()
        if stamp.exists():
            if stamp.read_text() != fingerprint:
                raise AssertionError(f"{name}: this worker's towers differ from those exported in {root}")
            return True
        shutil.rmtree(root, ignore_errors=True)  # a build that failed half-way
        root.mkdir(parents=True)
        build(root)
        stamp.write_text(fingerprint)
    return True


# name -> () -> (the fixture's value without its bundles, fingerprint, build(folder), flavours); the collected tests'
# needs (pytest_collection_modifyitems).
_SHARED: dict = {}
_NEEDED: set[str] = set()


def build_once(tmp_path_factory, name: str) -> tuple:
    """(*value, {flavour: bundle}, or the bundle for one flavour): the shared fixture ``name`` (an entry of _SHARED), its folder filled once per run for
    all pytest-xdist workers (under file locks in the base temp folder they share); the others reuse it.
    A worker that finds it being built by another builds a shared fixture this run needs that nobody has
    started (tracing is single-threaded: each core exports a different bundle), then waits. A worker whose
    towers differ from the exporter's (the fingerprint) fails instead of comparing against another model's."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "built_once"
    shared.mkdir(parents=True, exist_ok=True)
    value, fingerprint, build, flavours = _SHARED[name]()
    mine = lambda: (fingerprint, build)  # noqa: E731
    if not _build(shared, name, mine, wait=False):
        for other in sorted(_NEEDED - {name}):
            if not (shared / f"{other}.fingerprint").exists():
                _build(shared, other, lambda o=other: _SHARED[o]()[1:3], wait=False)
        _build(shared, name, mine, wait=True)
    bundles = {fl: shared / name / fl for fl in flavours}
    return (*value, bundles if len(flavours) > 1 else bundles[flavours[0]])


def shared_fixture(make):
    """Registers ``make`` (-> value, fingerprint, build, flavours) as the shared session fixture of its name."""
    _SHARED[make.__name__] = make

    @pytest.fixture(scope="session", name=make.__name__)
    def fixture(tmp_path_factory):
        return build_once(tmp_path_factory, make.__name__)

    return fixture


@shared_fixture
def tiny_bundles():
    """(video, text, spec, {flavour: folder}): both flavours of an STGT bundle on the small test backbones
    (untrained heads), exported once."""
    from test_bundle import tiny_towers

    video, text, spec = tiny_towers()
    return (video, text, spec), _fingerprint(video, text), functools.partial(_export, video, text, spec), FLAVOURS


@shared_fixture
def finsta_bundles():
    """(video, text, scorer, spec, folder): both flavours of a tiny Finsta bundle
    (test_finsta_bundle.finsta_towers), exported once."""
    from test_finsta_bundle import finsta_towers

    from finsta.families.finsta import graphs

    video, text, scorer, spec = finsta_towers()
    build = functools.partial(_export, video, text, spec, scorer=scorer, graphs=graphs)
    return (video, text, scorer, spec), _fingerprint(video, text, scorer), build, FLAVOURS


@shared_fixture
def real_bundle():
    """(video, text, spec, folder/custom): the demo model's shape on the real pretrained backbones
    (EfficientNet-Lite0, MiniLM-L6): STGT heads with the ConSE bridge and domain gates randomised with seed 0,
    otherwise untrained (test_bridge.bridged_towers), for parity on real frames, the bridge in the graphs and
    real-video behaviour. Exported once (a real-backbone trace is the dearest export of the suite)."""
    from test_bridge import bridged_towers, real_backbones_and_bridge

    video, text, spec = bridged_towers(*real_backbones_and_bridge())
    build = functools.partial(_export, video, text, spec, flavours=("custom",))
    return (video, text, spec), _fingerprint(video, text), build, ("custom",)


@shared_fixture
def svilm_bundles():
    """(video, text, spec, {flavour: folder}): both flavours of a tiny S-ViLM bundle (untrained heads)."""
    from test_svilm_bundle import tiny_svilm_towers

    from finsta.families.svilm import graphs

    video, text, spec, heads = tiny_svilm_towers()
    build = functools.partial(_export, video, text, spec, graphs=graphs)
    return (video, text, spec), _fingerprint(video, text), build, FLAVOURS
