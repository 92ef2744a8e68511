#!/usr/bin/env bash
# Fetches the ONNX Runtime C/C++ headers (Debian's libonnxruntime-dev, trixie) into a git-ignored
# cache without installing anything system-wide (docs/environment.md). Prints the include directory.
#
#   scripts/fetch_ort_headers.sh [DEST]       default DEST: .cache/ort
#
# Override: if ORT_INCLUDE_DIR (a folder holding onnxruntime_cxx_api.h) or ORT_ROOT (its parent
# prefix) is set, nothing is fetched and that folder is printed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/.cache/ort}

check() { [ -f "$1/onnxruntime_cxx_api.h" ] && [ -f "$1/onnxruntime_c_api.h" ]; }

if [ -n "${ORT_INCLUDE_DIR:-}" ]; then
  check "$ORT_INCLUDE_DIR" || { echo "ORT_INCLUDE_DIR=$ORT_INCLUDE_DIR has no onnxruntime_cxx_api.h" >&2; exit 1; }
  echo "$ORT_INCLUDE_DIR"; exit 0
fi
if [ -n "${ORT_ROOT:-}" ]; then
  for d in "$ORT_ROOT/include/onnxruntime" "$ORT_ROOT/include"; do
    check "$d" && { echo "$d"; exit 0; }
  done
  echo "ORT_ROOT=$ORT_ROOT has no include/onnxruntime/onnxruntime_cxx_api.h" >&2; exit 1
fi

inc=$dest/root/usr/include/onnxruntime
if check "$inc"; then echo "$inc"; exit 0; fi

# A private apt state: a sources list for the trixie suite on the mirror the system already uses.
mirror=$(grep -hoE '^(URIs:|deb)[[:space:]]+[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | grep -v security | head -1 | awk '{print $NF}' || true)
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
state=$dest/apt
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$dest/deb"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >"$state/sources.list"
opts=(-o "Dir::Etc::SourceList=$state/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
      -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache" -o "APT::Get::List-Cleanup=0"
      -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root" -o "Acquire::Check-Valid-Until=false")
echo "fetching libonnxruntime-dev headers from $mirror (trixie) into $dest" >&2
apt-get "${opts[@]}" -qq update >&2
(cd "$dest/deb" && apt-get "${opts[@]}" -qq download libonnxruntime-dev >&2)
deb=$(ls "$dest"/deb/libonnxruntime-dev_*.deb | head -1)
dpkg -x "$deb" "$dest/root"
check "$inc" || { echo "no ONNX Runtime headers found in $deb" >&2; exit 1; }
echo "$inc"
