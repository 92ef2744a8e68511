"""``finsta-rt ground`` and ``finsta-rt scenes``: noun phrases, heat maps, upsampling and PNG writing
against independent references (float64 loops, PyAV's PNG decoder), the windowing of scene-change
scores, and both commands end to end on a tiny S-ViLM bundle, bad inputs included."""

from __future__ import annotations

import json
import zlib

import av
import numpy as np
import pytest
from media import moving_frames, write_bytes, write_video

from finsta_rt import ground, scenes
from finsta_rt.cli import main as finsta_cli
from finsta_rt.ground import GroundError, heat_maps, noun_phrases, peak_patches, upsample, write_png


def cli(argv: list[str]) -> int:
    return finsta_cli(argv)


# ----------------------------------------------------------------------------- nouns and heat maps
@pytest.mark.parametrize(
    "text, want",
    [
        (
            "first a large red circle moves left, after that the small blue square appears",
            ["large red circle", "small blue square"],
        ),
        ("a man rides a bike on the road", ["man", "bike", "road"]),
        ("the red circle hits the Red Circle", ["red circle"]),  # duplicates removed, case-insensitively
    ],
)
def test_noun_phrases(text, want):
    assert noun_phrases(text) == want


@pytest.mark.parametrize("text, msg", [("", "empty"), ("   ", "empty"), ("moves quickly", "no nouns")])
def test_noun_phrases_errors(text, msg):
    with pytest.raises(GroundError, match=msg):
        noun_phrases(text)


def test_heat_maps_match_loop():
    rng = np.random.default_rng(0)
    nouns, groups = rng.normal(size=(3, 5)), rng.normal(size=(4, 5))
    assign = rng.integers(0, 4, size=(2, 9))
    got = heat_maps(nouns, groups, assign)
    for k in range(3):
        for t in range(2):
            for p in range(9):
                assert abs(got[k, t, p] - float(np.dot(nouns[k], groups[assign[t, p]]))) < 1e-5
    with pytest.raises(ValueError, match="groups outside"):
        heat_maps(nouns, groups, assign + 4)
    with pytest.raises(ValueError, match="share E"):
        heat_maps(nouns, groups[:, :3], assign)


def test_peak_patches_break_ties_by_confidence():
    heat = np.array([[[1.0, 2.0, 2.0, 0.0]], [[3.0, 2.0, 2.0, 0.0]]])  # [K=2, T=1, P=4]
    assign = np.array([[0, 1, 1, 2]])
    probs = np.full((1, 4, 3), 0.1)
    probs[0, 1, 1], probs[0, 2, 1] = 0.5, 0.7
    assert peak_patches(heat, assign, probs).tolist() == [[2], [0]]
    probs[0, 1, 1] = 0.9
    assert peak_patches(heat, assign, probs).tolist() == [[1], [0]]


def test_upsample_matches_float64_bilinear():
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(2, 12))  # grid 3 x 4
    H, W = 7, 10
    got = upsample(maps, (3, 4), H, W)
    src = maps.reshape(2, 3, 4)

    def coord(i, n_in, n_out):  # align_corners=False, clamped at the borders
        x = min(max((i + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1.0)
        i0 = int(np.floor(x))
        return i0, min(i0 + 1, n_in - 1), x - i0

    for b in range(2):
        for y in range(H):
            y0, y1, fy = coord(y, 3, H)
            for x in range(W):
                x0, x1, fx = coord(x, 4, W)
                want = (1 - fy) * ((1 - fx) * src[b, y0, x0] + fx * src[b, y0, x1]) + fy * (
                    (1 - fx) * src[b, y1, x0] + fx * src[b, y1, x1]
                )
                assert abs(got[b, y, x] - want) < 1e-5
    np.testing.assert_allclose(upsample(np.full((1, 4), 0.3), (2, 2), 5, 5), 0.3, atol=1e-6)


def test_png_decodes_with_an_independent_decoder(tmp_path):
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(13, 17, 3), dtype=np.uint8)
    write_png(tmp_path / "x.png", img)
    with av.open(str(tmp_path / "x.png")) as c:
        got = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert np.array_equal(got, img)
    assert np.array_equal(ground.read_png(tmp_path / "x.png"), img)
    data = (tmp_path / "x.png").read_bytes()
    assert data[12:16] == b"IHDR" and zlib.crc32(data[12:29]) == int.from_bytes(data[29:33], "big")
    with pytest.raises(ValueError, match="uint8"):
        write_png(tmp_path / "y.png", img.astype(np.float32))


def test_require_svilm_names_the_family():
    class Spec:
        def __init__(self, name):
            self.name = name

    class G:
        def __init__(self, names):
            self.outputs = [Spec(n) for n in names]

    class B:
        name, family = "stgt-demo", "stgt"
        graphs = {"video": G(["video_embedding", "video_global", "video_tokens"]), "text": G(["text_embedding"])}

    class M:
        bundle = B()

    with pytest.raises(GroundError, match="family 'stgt'.*S-ViLM"):
        ground.require_svilm(M())


# ----------------------------------------------------------------------------- scene windows
class PairDiffModel:
    """Stands in for an S-ViLM model: scene_change[b, t] = mean |frame t - frame t-1| of each window
    (0 at t = 0), so the stitched scores can be checked against the decoded frames themselves."""

    def __init__(self, T: int, size: int = 16):
        from finsta_rt.preprocess import Preprocess

        outs = lambda *names: [type("O", (), {"name": n}) for n in names]  # noqa: E731
        self.bundle = type(
            "B",
            (),
            {
                "preprocess": Preprocess(size=size, frames=T),
                "name": "fake",
                "family": "svilm",
                "graphs": {
                    "video": type(
                        "G", (), {"outputs": outs("group_features", "group_assignment", "group_probs", "scene_change")}
                    ),
                    "text": type("G", (), {"outputs": outs("noun_embedding")}),
                },
            },
        )()
        self.calls: list[int] = []

    def embed_frames(self, x: np.ndarray) -> dict[str, np.ndarray]:
        assert x.shape[1] == self.bundle.preprocess.frames
        self.calls.append(len(x))
        d = np.abs(np.diff(x.astype(np.float64), axis=1)).mean(axis=(2, 3, 4))
        return {"scene_change": np.concatenate([np.zeros((len(x), 1)), d], axis=1)}


@pytest.mark.parametrize("n, T, batch", [(2, 4, 8), (4, 4, 1), (7, 4, 2), (8, 4, 8), (25, 8, 3), (9, 2, 4)])
def test_streamed_windows_score_every_consecutive_pair_once(tmp_path, n, T, batch):
    from finsta_rt.video import read_frames

    video = write_video(tmp_path / "v.mp4", np.random.default_rng(n).integers(0, 255, (n, 24, 32, 3), np.uint8), fps=10)
    model = PairDiffModel(T)
    seen: list[float] = []
    stamps, scores = scenes.scene_changes(model, video, "every:1", batch=batch, progress=seen.append)
    clip = read_frames(video, "every:1", transform=model.bundle.preprocess)
    np.testing.assert_array_equal(stamps, clip.timestamps)
    want = np.r_[0.0, np.abs(np.diff(clip.frames.astype(np.float64), axis=0)).mean(axis=(1, 2, 3))]
    np.testing.assert_allclose(scores, want, rtol=0, atol=1e-12)
    windows = -(-(n - 1) // (T - 1))  # windows of T frames overlapping by one
    assert sum(model.calls) == windows and max(model.calls) <= batch
    assert seen == sorted(seen) and seen[-1] == stamps[-1] and len(seen) == len(model.calls)


def test_one_sampled_frame_is_a_clear_error(tmp_path):
    from finsta_rt.video import VideoError

    video = write_video(tmp_path / "v.mp4", moving_frames(3), fps=10)
    with pytest.raises(VideoError, match="gave 1 frame.*at least 2"):
        scenes.scene_changes(PairDiffModel(4), video, "every:5")


def reference_boundaries(t, s, ratio, window, min_score):
    """The rule written out pair by pair in float64 (score 0 compares nothing and is never used)."""
    out = []
    for i in range(1, len(s)):
        if s[i] <= min_score or (i > 1 and s[i] <= s[i - 1]) or (i + 1 < len(s) and s[i] < s[i + 1]):
            continue
        others = [float(s[j]) for j in range(1, len(s)) if j != i and abs(float(t[j]) - float(t[i])) <= window]
        if not others or s[i] >= ratio * (sum(others) / len(others)):
            out.append(i)
    return out


def test_plain_threshold_keeps_local_maxima_above_it():
    s = np.array([0, 0.1, 0.9, 0.2, 0.6, 0.6, 0.1, 0.95])
    t = np.arange(len(s), dtype=float)
    plain = lambda m: scenes.SceneRule(ratio=0.0, window=0.0, min_score=m)  # noqa: E731
    assert scenes.boundaries(t, s, plain(0.5)) == [2, 4, 7]  # the plateau 4-5 keeps its first index
    assert scenes.boundaries(t, s, plain(0.92)) == [7]
    assert scenes.boundaries(t[:5], np.zeros(5), plain(0.0)) == []


def test_relative_rule_ignores_motion_and_finds_quiet_cuts():
    t = np.arange(40) / 4.0  # fps:4
    s = np.full(40, 0.01)
    s[5] = 0.06  # a weak cut in a still shot: below any useful plain threshold, 6x its neighbours
    s[20:27] = [0.15, 0.18, 0.16, 0.19, 0.17, 0.18, 0.15]  # fast motion: high but no peak stands out
    s[35] = 0.5  # a strong cut
    rule = scenes.SceneRule(ratio=2.5, window=1.0, min_score=0.04)
    assert scenes.boundaries(t, s, rule) == [5, 35]
    assert scenes.boundaries(t, s, scenes.SceneRule(ratio=2.5, window=1.0, min_score=0.1)) == [35]  # the floor
    assert scenes.boundaries(t, s, scenes.SceneRule(ratio=0.0, window=0.0, min_score=0.1)) == [21, 23, 25, 35]


@pytest.mark.parametrize("seed", range(40))
def test_boundaries_match_the_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    t = np.cumsum(rng.uniform(0.05, 0.6, n))  # irregular sampling
    s = rng.choice([rng.uniform(0, 0.1, n), rng.gamma(0.5, 0.1, n), rng.integers(0, 4, n) / 10.0])  # ties too
    s[0] = 0.0
    ratio, window, min_score = float(rng.choice([0, 1.5, 2.5, 4])), float(rng.uniform(0, 3)), float(rng.uniform(0, 0.1))
    got = scenes.boundaries(t, s, scenes.SceneRule(ratio, window, min_score))
    assert got == reference_boundaries(t, s, ratio, window, min_score)


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"ratio": -1.0}, "ratio"),
        ({"window": float("nan")}, "window"),
        ({"min_score": 2.5}, "min_score"),
        ({"min_score": float("inf")}, "min_score"),
    ],
)
def test_scene_rule_rejects_bad_values(kw, msg):
    with pytest.raises(ValueError, match=msg):
        scenes.SceneRule(**kw)


def test_boundaries_reject_mismatched_inputs():
    with pytest.raises(ValueError, match="one length"):
        scenes.boundaries(np.arange(3.0), np.zeros(4))


# ----------------------------------------------------------------------------- the commands end to end
def two_scene_video(path, n=24, fps=8):
    """Two still shots, dark then bright: the cut is at frame n // 2, i.e. (n // 2) / fps seconds."""
    rng = np.random.default_rng(3)
    a = np.repeat(rng.integers(0, 60, (1, 48, 64, 3), dtype=np.uint8), n // 2, axis=0)
    b = np.repeat(rng.integers(180, 255, (1, 48, 64, 3), dtype=np.uint8), n - n // 2, axis=0)
    return write_video(path, np.concatenate([a, b]), fps=fps)


def test_scenes_json(svilm_bundles, tmp_path, capsys):  # noqa: F811
    _, _, spec, paths = svilm_bundles
    video = two_scene_video(tmp_path / "v.mp4")
    assert (
        cli(
            [
                "scenes",
                str(paths["custom"]),
                "--video",
                str(video),
                "--sampling",
                "fps:4",
                "--ratio",
                "0",
                "--min-score",
                "0",
                "--json",
            ]
        )
        == 0
    )
    r = json.loads(capsys.readouterr().out)
    times = np.array([s["time"] for s in r["scores"]])
    assert r["frames"] == len(times) == 12 and np.all(np.diff(times) > 0)  # 3 s at 4 fps
    scores = np.array([s["score"] for s in r["scores"]])
    rule = scenes.SceneRule(ratio=0.0, window=1.0, min_score=0.0)
    assert [b["index"] for b in r["boundaries"]] == reference_boundaries(times, scores, 0.0, 1.0, 0.0)
    assert r["rule"] == {"ratio": rule.ratio, "window": rule.window, "min_score": rule.min_score}
    assert len(r["scenes"]) == len(r["boundaries"]) + 1
    assert r["scenes"][0]["start"] == pytest.approx(0.0) and r["scenes"][-1]["end"] == pytest.approx(3.0)  # whole video
    assert [s["start"] for s in r["scenes"][1:]] == [b["time"] for b in r["boundaries"]]
    # the cut at 1.5 s is found: the strongest boundary of the plain rule straddles it, and the default
    # (relative) rule finds it and nothing else, even with untrained heads (still shots score ~0)
    cut = 12 / 8
    first_after = int(np.searchsorted(times, cut))
    best = max(r["boundaries"], key=lambda b: b["score"])
    assert best["index"] == first_after and best["previous_time"] < cut <= best["time"], r["boundaries"]
    assert cli(["scenes", str(paths["custom"]), "--video", str(video), "--sampling", "fps:4", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert [b["index"] for b in r["boundaries"]] == [first_after], r["boundaries"]
    assert cli(["scenes", str(paths["custom"]), "--video", str(video)]) == 0  # the default rule
    out = capsys.readouterr().out
    d = scenes.SceneRule()
    assert f"ratio {d.ratio:g} within {d.window:g} s, min score {d.min_score:g}" in out and "scene 1:" in out


def test_ground_writes_overlays(svilm_bundles, tmp_path, capsys):  # noqa: F811
    _, _, spec, paths = svilm_bundles
    video = two_scene_video(tmp_path / "v.mp4")
    out = tmp_path / "heat"
    assert (
        cli(
            [
                "ground",
                str(paths["portable"]),
                "--video",
                str(video),
                "--text",
                "a red circle and a blue square",
                "-o",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    r = json.loads(capsys.readouterr().out)
    T, S = spec.preprocess.frames, spec.preprocess.size
    assert [n["noun"] for n in r["nouns"]] == ["red circle", "blue square"]
    files = sorted(out.glob("*.png"))
    assert len(files) == 2 * T
    img = ground.read_png(files[0])
    assert img.shape == (S, S, 3)
    assert all(0 <= y < 4 and 0 <= x < 4 for n in r["nouns"] for y, x in n["peak_patch"])  # tiny_vit: 4 x 4 patches


@pytest.mark.parametrize(
    "make, msg",
    [
        (lambda d: d / "missing.mp4", "missing.mp4"),
        (lambda d: write_bytes(d / "junk.mp4", b"not a video at all" * 50), "junk.mp4"),
    ],
)
@pytest.mark.parametrize("command", ["ground", "scenes"])
def test_bad_video_is_a_clear_error(svilm_bundles, tmp_path, capsys, make, msg, command):  # noqa: F811
    _, _, _, paths = svilm_bundles
    argv = [command, str(paths["custom"]), "--video", str(make(tmp_path))]
    if command == "ground":
        argv += ["--text", "a red circle", "-o", str(tmp_path / "o")]
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"finsta-rt {command}: ") and msg in err and "Traceback" not in err


@pytest.mark.parametrize(
    "text, msg", [("", "the text is empty"), ("  ", "the text is empty"), ("moves left quickly", "found no nouns")]
)
def test_ground_bad_text_is_a_clear_error(svilm_bundles, tmp_path, capsys, text, msg):  # noqa: F811
    _, _, _, paths = svilm_bundles
    video = two_scene_video(tmp_path / "v.mp4")
    assert cli(["ground", str(paths["custom"]), "--video", str(video), "--text", text, "-o", str(tmp_path / "o")]) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_scenes_option_errors(svilm_bundles, tmp_path, capsys):  # noqa: F811
    _, _, _, paths = svilm_bundles
    video = two_scene_video(tmp_path / "v.mp4")
    for opt, value in (("--min-score", "3"), ("--window", "-1"), ("--ratio", "nan")):
        assert cli(["scenes", str(paths["custom"]), "--video", str(video), opt, value]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"finsta-rt scenes: {opt} must be") and value in err
    assert cli(["scenes", str(paths["custom"]), "--video", str(video), "--sampling", "segments:2"]) == 2
    assert "dense sampling" in capsys.readouterr().err
    assert cli(["scenes", str(tmp_path / "nobundle"), "--video", str(video)]) == 2
    assert "nobundle" in capsys.readouterr().err
