import os
import sys
from pathlib import Path

# tests import `reference` and `helpers` as plain modules
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OMP_NUM_THREADS", "2")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory):
    """Both flavours of an STGT bundle on the small test backbones (untrained heads), exported once."""
    from test_bundle import tiny_towers
    from finsta.export.bundle import export_bundle

    video, text, spec = tiny_towers()
    root = tmp_path_factory.mktemp("bundles")
    paths = {fl: export_bundle(video, text, spec, out_dir=root / fl, flavour=fl) for fl in ("custom", "portable")}
    return video, text, spec, paths
