#!/usr/bin/env bash
# Installs the Debian development packages that the C++ runtime (runtime/) and its example
# (examples/cpp/) build against: yaml-cpp for bundle.yaml, FFmpeg's libraries for decoding video in
# the example, pkg-config to find them. sha256 is implemented in runtime/src (no OpenSSL needed).
# Does nothing when every package is already installed; otherwise runs `apt-get update` once and
# installs what is missing (needs root, or sudo).
set -euo pipefail
pkgs=(libyaml-cpp-dev libavformat-dev libavcodec-dev libswscale-dev libavutil-dev pkg-config)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install_cpp_deps: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install_cpp_deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
