#!/usr/bin/env bash
# Set up n2m in this checkout: system packages (Debian, when run as root) and a virtual
# environment at .venv/. Usage: scripts/setup.sh [runtime|gpu|dev]   (default: runtime)
#   runtime: what `n2m generate` and `n2m serve` need (no torch, no Qt)
#   gpu:     the runtime with onnxruntime-gpu in place of onnxruntime (exactly one of the two:
#            both install the module `onnxruntime`); it runs on the CPU too
#   dev:     everything: panel (Qt), training (torch==2.13.0, corpus tools), tests
set -euo pipefail
profile=${1:-runtime}
BASIC_PITCH_VERSION=0.4.0
cd "$(dirname "$0")/.."

apt_pkgs=()
case "$profile" in
  runtime|gpu) ;;
  dev) apt_pkgs=(fluidsynth fluid-soundfont-gm musescore-general-soundfont timgm6mb-soundfont
                 avldrums.lv2-soundfont opl3-soundfont liblo-tools xvfb libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1
                 libdbus-1-3 libsndfile1) ;;
  *) echo "setup.sh: unknown profile '$profile' (runtime, gpu or dev)" >&2; exit 2 ;;
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
  runtime|gpu) spec="." ;;
  dev) spec=".[dev]" ;;
esac
# pip's output goes to a log, shown only when something fails
log=.venv/setup.log
if ! .venv/bin/python -m pip install -q -e "$spec" >"$log" 2>&1; then
  grep -v "is ignored" "$log" | tail -n 40 >&2
  echo "setup.sh: pip install failed (full log: $log)" >&2
  exit 1
fi
if [ "$profile" = dev ]; then
  # Basic Pitch (note transcription for `n2m eval`): its model ships in the wheel as nmp.onnx and
  # runs on onnxruntime; --no-deps leaves out TensorFlow, which would pin numpy < 2 (pretty_midi,
  # mir_eval and resampy come with the train extra)
  if ! .venv/bin/python -m pip install -q --no-deps "basic-pitch==$BASIC_PITCH_VERSION" >>"$log" 2>&1; then
    grep -v "is ignored" "$log" | tail -n 20 >&2
    echo "setup.sh: pip install basic-pitch failed (full log: $log)" >&2
    exit 1
  fi
fi
if [ "$profile" = gpu ]; then
  # one distribution owns the module: the CPU build leaves first, then the GPU build of the same
  # release goes in (else the newest GPU build); if none installs, the CPU build comes back
  ort=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('onnxruntime'))" 2>/dev/null || true)
  if [ -n "$ort" ]; then
    .venv/bin/python -m pip uninstall -q -y onnxruntime >>"$log" 2>&1
    if ! .venv/bin/python -m pip install -q "onnxruntime-gpu==$ort" >>"$log" 2>&1 \
        && ! .venv/bin/python -m pip install -q onnxruntime-gpu >>"$log" 2>&1; then
      .venv/bin/python -m pip install -q "onnxruntime==$ort" >>"$log" 2>&1
      echo "setup.sh: pip install onnxruntime-gpu failed (full log: $log); the CPU build stays" >&2
      exit 1
    fi
  fi
fi
.venv/bin/n2m --version
