#!/usr/bin/env bash
# Installs the CUDA 11.8 toolkit (nvcc, headers, libcuda link stub) and CMake
# from Debian bookworm's contrib/non-free components. Idempotent: does nothing
# when nvcc and cmake are already on the PATH.
set -euo pipefail
if command -v nvcc >/dev/null 2>&1 && command -v cmake >/dev/null 2>&1; then
  echo "cuda-toolchain: $(nvcc --version | tail -n 1); $(cmake --version | head -n 1)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
# Enable contrib and non-free on every Debian source (deb822 and one-line formats).
for f in /etc/apt/sources.list.d/debian.sources; do
  [ -f "$f" ] || continue
  $SUDO sed -i -E '/^URIs: .*debian/,/^Components:/ s/^Components: main$/Components: main contrib non-free non-free-firmware/' "$f"
done
if [ -f /etc/apt/sources.list ]; then
  $SUDO sed -i -E 's/^(deb .*debian[^ ]* [a-z-]+) main$/\1 main contrib non-free non-free-firmware/' /etc/apt/sources.list
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends nvidia-cuda-toolkit cmake
nvcc --version | tail -n 1
