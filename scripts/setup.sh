#!/usr/bin/env bash
# Set up n2m in this checkout: system packages (Debian, when run as root) and a virtual
# environment at .venv/. Usage: scripts/setup.sh [runtime|dev]   (default: runtime)
#   runtime: what `n2m generate` and `n2m serve` need (no torch, no Qt)
#   dev:     everything: panel (Qt), training (torch==2.13.0, corpus tools), tests
set -euo pipefail
profile=${1:-runtime}
cd "$(dirname "$0")/.."

apt_pkgs=()
case "$profile" in
  runtime) ;;
  dev) apt_pkgs=(fluidsynth fluid-soundfont-gm musescore-general-soundfont timgm6mb-soundfont
                 avldrums.lv2-soundfont opl3-soundfont liblo-tools xvfb libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1
                 libdbus-1-3 libsndfile1) ;;
  *) echo "setup.sh: unknown profile '$profile' (runtime or dev)" >&2; exit 2 ;;
esac

if [ ${#apt_pkgs[@]} -gt 0 ]; then
  missing=()
  for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      echo "setup.sh: please install these Debian packages: sudo apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
case "$profile" in
  runtime) spec="." ;;
  dev) spec=".[dev]" ;;
esac
# pip's output goes to a log, shown only when something fails
log=.venv/setup.log
if ! .venv/bin/python -m pip install -q -e "$spec" >"$log" 2>&1; then
  grep -v "is ignored" "$log" | tail -n 40 >&2
  echo "setup.sh: pip install failed (full log: $log)" >&2
  exit 1
fi
.venv/bin/n2m --version
