#!/usr/bin/env bash
# The prepared GPU check (issue 19 §2): runs on a GPU machine that has python3 with torch 2.11
# (+cu130; its torch/lib has libtorch*, libc10*, and the nvidia wheels the CUDA libraries) and the
# bundle that scripts/gpu_bundle.sh made here (gpu-bundle/: shiftlab, gpu_check, their non-torch
# libraries, the digits data and a JPEG folder). Writes $OUT/gpu_check.json (every figure, each
# section's status / seconds / error line) and $OUT/gpu_check.log; run directories' metrics and
# summaries go to $OUT/runs/.
#
#   scripts/gpu_check.sh [--dry-run] [--quick] [--only=a,b,...] [--bundle=DIR]
#
# On the GPU machine: the repository's tracked files plus gpu-bundle/ (47 MiB), then
# `bash scripts/gpu_check.sh` from the repository root. Estimated ~5 minutes (never run on a GPU
# yet); it stops by itself within GPU_CHECK_BUDGET (8 minutes), so one 10-minute call holds it;
# `--quick` if that is too much.
#
#   --dry-run   CPU, tiny sizes (automatic when python's torch sees no CUDA): every section whose code
#               can run on a CPU runs (CUDA-only rows read "skipped: no CUDA"), to prove the script,
#               the bundle's libraries and the Python side before a GPU is lent.
#   --quick     smaller step counts (the fallback when the full check does not fit), also
#               GPU_CHECK_QUICK=1.
#   --only      run only these sections (names below).
# Env: OUT (default ./gpu-check-out), PYTHON (default python3), GPU_BUNDLE (default ./gpu-bundle),
#      GPU_CHECK_BUDGET (seconds for all sections; default 480, inside one 10-minute call;
#      1800 for a dry run), GPU_CHECK_RUNS (keep the run directories there; default a temporary one).
#
# Sections, in order (each time-boxed; one that fails or times out does not stop the others):
#   facts       GPU (nvidia-smi), driver, python torch/CUDA/cuDNN, `shiftlab --version`, libraries
#   agree       ResNet-50 forward+backward fp32 / TF32 / bf16 autocast vs a CPU float64 reference; DANN and
#               MK-MMD losses and gradients (bench/gpu_check.cpp `agree`)
#   dist        1-rank NCCL process group: all-reduce, broadcast, all-gather, gradient buckets (`dist`)
#   step_cpp    ResNet-50 + DANN step, 64 + 64 at 224 px, bf16, channels_last, batches on the GPU (`step`)
#   py_eager    the same step in Python torch eager (bench/gpu_throughput.py)
#   e2e_jpeg    `shiftlab train` from the JPEG folder through shiftlab's loader, same model and step
#   digits      MNIST -> UCI digits DANN (configs/digits/mnist_to_uci.ini) on the device and on the CPU
#   determinism two digits runs with run.deterministic = true: identical loss columns?
#   py_compile  the Python step with torch.compile (inductor)
set -uo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
ALL_SECTIONS=(facts agree dist step_cpp py_eager e2e_jpeg digits determinism py_compile)

# ---------------------------------------------------------------- section mode (re-entered below)
if [ "${1:-}" = "--section" ]; then
  name=$2
  S=$OUT/sections
  # at the time limit `timeout` signals the whole process group: with a trap, bash first waits for
  # the running command (shiftlab stops after its current step), so nothing outlives the section
  # (one that ignores the signal gets SIGKILL 10 s later)
  # (a section that writes NAME.lines, one JSON object per line as parts finish, keeps its last line)
  trap 'echo "section $name: time limit reached" >&2
        [ -s "$S/$name.lines" ] && tail -n 1 "$S/$name.lines" >"$S/$name.json"; exit 124' TERM INT
  set -e  # a failing command fails the section (its error line goes to the JSON)
  sl() { LD_LIBRARY_PATH="$LIBS" "$BUNDLE/bin/shiftlab" "$@"; }
  gc() { LD_LIBRARY_PATH="$LIBS" "$BUNDLE/bin/gpu_check" "$@"; }
  report() { "$PY" "$SRC/bench/gpu_check_report.py" "$@"; }
  skip() { echo "$*" >"$S/$name.skip"; exit 3; }
  # keep each run's small files (not its checkpoints) in $OUT/runs
  keep_run() { local d; d=$(ls -d "$RUNS/$1"/*/ 2>/dev/null | tail -n 1) || return 0; [ -n "$d" ] || return 0
    mkdir -p "$OUT/runs/$1"; cp "$d"/{summary.json,metrics.jsonl,config.resolved.ini,log.txt} "$OUT/runs/$1/" 2>/dev/null || true; }
  train_common=(--run.root="$RUNS" --run.seed=0)
  case $name in
  facts)
    F=$S/facts.d; mkdir -p "$F"
    cp "$BUNDLE/MANIFEST.json" "$F/bundle-manifest.json" 2>/dev/null || true
    if command -v nvidia-smi >/dev/null; then
      nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader >"$F/nvidia-smi.csv" \
        2>"$F/nvidia-smi.err" || true
      nvidia-smi 2>&1 | head -n 12 >"$F/nvidia-smi.txt" || true
    else
      echo "nvidia-smi not found" >"$F/nvidia-smi.err"
    fi
    "$PY" - >"$F/torch.json" <<'EOF' || true
import json, os, sys, torch
d = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
     "torch_dir": os.path.dirname(torch.__file__), "cuda_available": torch.cuda.is_available(),
     "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
     "nccl": None}
try:
    v = torch.cuda.nccl.version() if torch.cuda.is_available() else None
    d["nccl"] = ".".join(map(str, v)) if isinstance(v, tuple) else v
except Exception as e:
    d["nccl"] = "unknown: %s" % str(e).splitlines()[0][:200]
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    d.update(device_name=p.name, capability="%d.%d" % (p.major, p.minor), memory_gib=round(p.total_memory / 2**30, 1),
             device_count=torch.cuda.device_count())
try:
    import triton
    d["triton"] = triton.__version__
except Exception as e:
    d["triton"] = "not importable: %s" % str(e).splitlines()[0][:200]
print(json.dumps(d))
EOF
    version_rc=0
    sl --version >"$F/shiftlab-version.txt" 2>&1 || version_rc=$?
    cat "$F/shiftlab-version.txt"
    ldd --version 2>&1 | head -n 1 >"$F/glibc.txt" || true
    (command -v nvcc >/dev/null && nvcc --version) >"$F/nvcc.txt" 2>&1 || true
    (grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs; echo "cores $(getconf _NPROCESSORS_ONLN)") >"$F/cpu.txt" 2>/dev/null || true
    : >"$F/ldd-not-found.txt"; : >"$F/ldd-outside.txt"
    for b in "$BUNDLE"/bin/*; do
      LD_LIBRARY_PATH="$LIBS" ldd "$b" 2>&1 | grep -e 'not found' -e 'error' | sed "s|^|$(basename "$b"): |" >>"$F/ldd-not-found.txt" || true
      # libraries resolved outside the bundle and python's torch/nvidia directories (the OS's own)
      LD_LIBRARY_PATH="$LIBS" ldd "$b" | awk '/=>/ && $3 ~ /^\// {print $3}' |
        grep -v -e "^$BUNDLE/" -e "^$SITE/" >>"$F/ldd-outside.txt" || true
    done
    sort -u -o "$F/ldd-outside.txt" "$F/ldd-outside.txt"
    [ -e "$S/compat-used" ] && touch "$F/compat-used"
    report facts "$F" >"$S/facts.json"
    [ ! -s "$F/ldd-not-found.txt" ] || { echo "error: libraries not found: $(tr '\n' ' ' <"$F/ldd-not-found.txt")" >&2; exit 1; }
    [ $version_rc = 0 ] || { echo "error: shiftlab --version failed: $(tail -n 1 "$F/shiftlab-version.txt")" >&2; exit 1; }
    ;;
  agree)
    gc agree --device="$DEV" --batch="$AGREE_BATCH" --size="$AGREE_SIZE" >"$S/agree.lines"
    tail -n 1 "$S/agree.lines" >"$S/agree.json"
    ;;
  dist)
    backend=nccl; [ "$DEV" = cpu ] && backend=gloo
    gc dist --device="$DEV" --backend="$backend" >"$S/dist.json"
    [ "$DEV" = cpu ] && echo "dry run: gloo on CPU (NCCL needs CUDA)"
    ;;
  step_cpp)
    gc step --device="$DEV" --batch="$B" --size="$SIZE" --steps="$STEPS" --warmup="$WARMUP" --amp=bf16 --channels_last=1 \
      >"$S/step_cpp.json"
    ;;
  py_eager | py_compile)
    mode=${name#py_}
    "$PY" "$SRC/bench/gpu_throughput.py" --device="$DEV" --mode="$mode" --batch="$B" --size="$SIZE" --steps="$STEPS" \
      --warmup="$WARMUP" --amp=bf16 --channels-last=1 ${PY_THREADS:+--threads=$PY_THREADS} >"$S/$name.json"
    ;;
  e2e_jpeg)
    root=$BUNDLE/jpeg
    if [ "$DRY" = 1 ]; then  # a few images per class: the end-of-run evaluation on a CPU stays short
      root=$RUNS/jpeg-small; rm -rf "$root"
      for c in "$BUNDLE"/jpeg/*/; do c=$(basename "$c"); mkdir -p "$root/$c"
        ls "$BUNDLE/jpeg/$c" | head -n 3 | while read -r f; do ln -s "$BUNDLE/jpeg/$c/$f" "$root/$c/$f"; done; done
    fi
    args=(--method=dann --model.backbone=resnet50 --model.in_channels=3 --model.head=bottleneck
      --optim.name=sgd --optim.lr=0.01 --optim.momentum=0.9 --optim.weight_decay=0.0005
      --train.steps="$E2E_STEPS" --train.log_every="$E2E_LOG" --train.eval_every=0 --train.amp=bf16
      --train.channels_last=true --run.device="$DEV" --run.name=e2e_jpeg --run.threads="$E2E_THREADS"
      --eval.batch_size="$B" --data.target.labelled=false
      --data.source.val_fraction=0.1 --data.protocol=transductive)  # one folder: held-out source-val, transductive target-test
    for d in source target; do
      args+=(--data.$d.dataset=image_folder --data.$d.root="$root" --data.$d.batch_size="$B"
        --data.$d.transform="random_resized_crop($SIZE), hflip, normalize(imagenet)"
        --data.$d.eval_transform="resize($((SIZE * 8 / 7))), center_crop($SIZE), normalize(imagenet)"
        --data.$d.workers="$E2E_WORKERS")
    done
    rc=0
    sl train "${train_common[@]}" "${args[@]}" || rc=$?
    keep_run e2e_jpeg
    [ $rc = 0 ] || exit $rc
    report rate "$RUNS/e2e_jpeg" 1 >"$S/e2e_jpeg.rate.json" || exit 1
    "$PY" - "$S/e2e_jpeg.rate.json" "$E2E_WORKERS" "$B" "$SIZE" "$E2E_STEPS" >"$S/e2e_jpeg.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
r.update(loader_workers_per_domain=int(sys.argv[2]), batch_source=int(sys.argv[3]), batch_target=int(sys.argv[3]),
         size=int(sys.argv[4]), steps=int(sys.argv[5]), first_row_skipped="warm-up (cuDNN autotuning, first batches)")
print(json.dumps(r))
EOF
    ;;
  digits)
    args=(--config "$SRC/configs/digits/mnist_to_uci.ini" --method=dann --train.steps="$DIGITS_STEPS"
      --train.eval_every="$DIGITS_STEPS" --train.log_every="$DIGITS_LOG"
      --data.source.root="$BUNDLE/data" --data.target.root="$BUNDLE/data")
    sl train "${train_common[@]}" "${args[@]}" --run.device="$DEV" --run.name=digits_device || exit 1
    keep_run digits_device
    sl train "${train_common[@]}" "${args[@]}" --run.device=cpu --run.name=digits_cpu || exit 1
    keep_run digits_cpu
    # the yardstick: the same CPU run with another seed (another initialisation and data order)
    sl train "${args[@]}" --run.root="$RUNS" --run.seed=1 --run.device=cpu --run.name=digits_cpu_seed1 || exit 1
    keep_run digits_cpu_seed1
    for r in device cpu cpu_seed1; do report run "$RUNS/digits_$r" >"$S/digits.$r.json" || exit 1; done
    "$PY" - "$S" "$DEV" "$DIGITS_STEPS" >"$S/digits.json" <<'EOF'
import json, sys
S = sys.argv[1]
a, b, c = (json.load(open("%s/digits.%s.json" % (S, r))) for r in ("device", "cpu", "cpu_seed1"))
diff = a["target_test_acc"] - b["target_test_acc"]
seed_diff = c["target_test_acc"] - b["target_test_acc"]
tol = max(5.0, 2 * abs(seed_diff))
print(json.dumps({"device": sys.argv[2], "steps": int(sys.argv[3]), "device_run": a, "cpu_run": b, "cpu_run_seed1": c,
                  "difference": diff, "seed_difference_cpu": seed_diff, "tolerance_points": tol, "close": abs(diff) <= tol,
                  "note": "device and CPU runs share the seed, data order and initial weights; dropout's random stream and "
                          "the kernels differ on the GPU, so they diverge. 'close': within max(5, 2 x |seed 1 - seed 0 "
                          "on the CPU|) points of target accuracy"}))
EOF
    ;;
  determinism)
    args=(--config "$SRC/configs/digits/mnist_to_uci.ini" --method=dann --train.steps="$DET_STEPS"
      --train.eval_every="$DET_STEPS" --train.log_every=10 --run.deterministic=true --run.device="$DEV"
      --data.source.root="$BUNDLE/data" --data.target.root="$BUNDLE/data")
    sl train "${train_common[@]}" "${args[@]}" --run.name=det_a || exit 1
    keep_run det_a
    sl train "${train_common[@]}" "${args[@]}" --run.name=det_b || exit 1
    keep_run det_b
    report same-losses "$RUNS/det_a" "$RUNS/det_b" >"$S/determinism.json" || exit 1
    ;;
  *) echo "unknown section '$name'" >&2; exit 2 ;;
  esac
  exit 0
fi

# ---------------------------------------------------------------- driver
DRY=0
QUICK=${GPU_CHECK_QUICK:-0}
ONLY=""
BUNDLE=${GPU_BUNDLE:-$SRC/gpu-bundle}
for a in "$@"; do
  case $a in
    --dry-run) DRY=1 ;;
    --quick) QUICK=1 ;;
    --only=*) ONLY=${a#--only=} ;;
    --bundle=*) BUNDLE=${a#--bundle=} ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument '$a' (see --help)" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-$SRC/gpu-check-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUNDLE=$(cd "$BUNDLE" 2>/dev/null && pwd) || { echo "gpu_check: no bundle at ${GPU_BUNDLE:-$SRC/gpu-bundle} (run scripts/gpu_bundle.sh)" >&2; exit 1; }
PY=${PYTHON:-python3}
chmod +x "$BUNDLE"/bin/* 2>/dev/null || true  # in case the copy to this machine dropped the mode bits
START=$(date +%s)
rm -rf "$OUT/sections" "$OUT/runs"
mkdir -p "$OUT/sections"
exec > >(tee "$OUT/gpu_check.log") 2>&1
echo "gpu_check: $(date -u +%FT%TZ) on $(hostname), bundle $BUNDLE, out $OUT"

# python's torch: its lib directory provides libtorch*/libc10* (and, through the nvidia wheels, CUDA)
TORCH_DIR=$("$PY" -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>"$OUT/sections/python.err") || {
  echo "gpu_check: error: $PY cannot import torch: $(tail -n 1 "$OUT/sections/python.err")"; exit 1; }
SITE=$(dirname "$TORCH_DIR")
LIBS="$BUNDLE/lib:$TORCH_DIR/lib"
for d in "$SITE"/nvidia/*/lib; do [ -d "$d" ] && LIBS="$LIBS:$d"; done
LIBS="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
HAS_CUDA=$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)
if [ "$HAS_CUDA" != 1 ] && [ "$DRY" = 0 ]; then
  echo "gpu_check: python's torch sees no CUDA: dry run on the CPU"
  DRY=1
fi

# the bundle's binaries were built on Debian 12 (gcc 12): an older libstdc++ on this machine gets
# the bundle's copy (lib/compat), used only when the first try fails on a symbol version
if ! LD_LIBRARY_PATH="$LIBS" "$BUNDLE/bin/shiftlab" --version >"$OUT/sections/first-try.txt" 2>&1; then
  cat "$OUT/sections/first-try.txt"
  if grep -q -e 'GLIBCXX_' -e 'CXXABI_' -e 'GCC_[0-9]' "$OUT/sections/first-try.txt"; then
    echo "gpu_check: retrying with the bundle's libstdc++ (lib/compat)"
    LIBS="$BUNDLE/lib/compat:$LIBS"
    touch "$OUT/sections/compat-used"
  fi
fi

if [ "$DRY" = 1 ]; then
  DEV=cpu; AGREE_BATCH=2; AGREE_SIZE=64; B=2; SIZE=64; STEPS=2; WARMUP=1
  E2E_STEPS=4; E2E_LOG=2; E2E_WORKERS=1; E2E_THREADS=2; DIGITS_STEPS=30; DIGITS_LOG=10; DET_STEPS=20; PY_THREADS=2
  MODE="dry run (cpu)"
elif [ "$QUICK" = 1 ]; then
  DEV=cuda; AGREE_BATCH=2; AGREE_SIZE=224; B=64; SIZE=224; STEPS=20; WARMUP=8
  E2E_STEPS=30; E2E_LOG=10; E2E_WORKERS=7; E2E_THREADS=2; DIGITS_STEPS=150; DIGITS_LOG=50; DET_STEPS=50; PY_THREADS=""
  MODE="gpu (quick)"
else
  DEV=cuda; AGREE_BATCH=4; AGREE_SIZE=224; B=64; SIZE=224; STEPS=60; WARMUP=15
  E2E_STEPS=60; E2E_LOG=10; E2E_WORKERS=7; E2E_THREADS=2; DIGITS_STEPS=300; DIGITS_LOG=50; DET_STEPS=100; PY_THREADS=""
  MODE="gpu"
fi
# the whole check's budget: one 10-minute device call with margin (a CPU dry run on a busy 2-core
# machine takes longer: torch.compile alone needs minutes there)
BUDGET=${GPU_CHECK_BUDGET:-$([ "$DRY" = 1 ] && echo 1800 || echo 480)}
DEADLINE=$((START + BUDGET))
RUNS=${GPU_CHECK_RUNS:-$(mktemp -d /tmp/gpu-check-runs.XXXXXX)}
export OUT BUNDLE PY LIBS SITE DEV DRY RUNS AGREE_BATCH AGREE_SIZE B SIZE STEPS WARMUP E2E_STEPS E2E_LOG E2E_WORKERS \
  E2E_THREADS DIGITS_STEPS DIGITS_LOG DET_STEPS PY_THREADS
echo "gpu_check: mode $MODE, device $DEV, python $PY (torch in $TORCH_DIR), budget $BUDGET s"

# per-section time limits (s) of the full GPU check; every limit is also cut to what the budget has left
declare -A LIMIT=([facts]=60 [agree]=150 [dist]=60 [step_cpp]=120 [py_eager]=120 [e2e_jpeg]=150 [digits]=200
  [determinism]=150 [py_compile]=300)
SECTIONS=("${ALL_SECTIONS[@]}")
[ -n "$ONLY" ] && IFS=, read -r -a SECTIONS <<<"$ONLY"
echo "${SECTIONS[*]}" >"$OUT/sections/ORDER"
"$PY" - "$OUT/sections/meta.json" "$MODE" "$DEV" "$BUDGET" "$BUNDLE" <<'EOF'
import json, socket, sys
json.dump({"mode": sys.argv[2], "device": sys.argv[3], "budget_s": int(sys.argv[4]), "bundle": sys.argv[5],
           "host": socket.gethostname()}, open(sys.argv[1], "w"))
EOF

status_json() {  # NAME STATUS SECONDS RC NOTE_KEY NOTE
  "$PY" - "$@" <<'EOF'
import json, sys
name, status, secs, rc, key, note = sys.argv[1:7]
d = {"status": status, "seconds": round(float(secs), 1), "rc": int(rc)}
if note:
    d[key] = note
print(json.dumps(d))
EOF
}

for name in "${SECTIONS[@]}"; do
  [ -n "${LIMIT[$name]:-}" ] || { echo "gpu_check: unknown section '$name' (${ALL_SECTIONS[*]})"; continue; }
  left=$((DEADLINE - $(date +%s) - 5))
  if [ "$left" -lt 20 ]; then
    status_json "$name" skipped 0 0 reason "out of time (GPU_CHECK_BUDGET = $BUDGET s)" >"$OUT/sections/$name.status.json"
    echo "== $name: skipped (out of time)"; continue
  fi
  limit=${LIMIT[$name]}; [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (limit ${limit} s)"
  t0=$(date +%s.%N)
  timeout -k 10 "$limit" bash "$0" --section "$name" > >(tee "$OUT/sections/$name.log") 2>&1
  rc=$?
  sleep 0.2  # let tee finish the log
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{print b - a}')
  case $rc in
    0) st=ok; key=""; note="" ;;
    3) st=skipped; key=reason; note=$(cat "$OUT/sections/$name.skip" 2>/dev/null) ;;
    124 | 137) st=timeout; key=error; note="timed out after ${limit} s" ;;
    *) st=failed; key=error
       note=$(grep -i -E 'error|exception|not found|what\(\)' "$OUT/sections/$name.log" | tail -n 1 | cut -c1-400)
       [ -n "$note" ] || note=$(grep -v '^\s*$' "$OUT/sections/$name.log" | tail -n 1 | cut -c1-400) ;;
  esac
  status_json "$name" "$st" "$secs" "$rc" "$key" "$note" >"$OUT/sections/$name.status.json"
  printf '== %s: %s (%.1f s)%s\n' "$name" "$st" "$secs" "${note:+: $note}"
done

echo
"$PY" "$SRC/bench/gpu_check_report.py" merge "$OUT"
[ -n "${GPU_CHECK_RUNS:-}" ] || rm -rf "$RUNS"
echo "gpu_check: $(( $(date +%s) - START )) s; figures in $OUT/gpu_check.json, log in $OUT/gpu_check.log"
