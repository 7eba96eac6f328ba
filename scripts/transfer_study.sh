#!/usr/bin/env bash
# Transfer-strategy study (README "Transfer strategies", issue 8) and the few-label adapter
# comparison (issue 6): MNIST with 10 / 100 / all (~700) labels per class, from a ResNet-18
# pretrained here on Fashion-MNIST.
#  1. pretrain (configs/pretrain/fashion_resnet18.ini) and export the backbone (skipped when
#     $ROOT/fashion_resnet18.safetensors exists; PRETRAINED=FILE uses a given export);
#  2. per labels-per-class N and seed: scratch, linear probe (extract + L-BFGS probe), head only,
#     top-1 fine-tune, full fine-tune with discriminative LRs, two-phase (head, then full), and the
#     adapters residual / bottleneck / LoRA (frozen backbone) — configs/study/mnist_few_labels.ini;
#  3. `shiftlab report`: Markdown table (mean ± std over seeds, difference to scratch) + SVG (accuracy vs labels).
# Resumable: finished runs are skipped. JOBS runs in parallel, each single-threaded and niced.
# Environment: ROOT (runs/study), SEEDS ("0 1 2"), LABELS ("10 100 0"; 0 = all), STRATEGIES,
# ADAPTER_LABELS ("10 100"), JOBS (2), STEPS (200), PRETRAIN_STEPS (500).
set -euo pipefail
cd "$(dirname "$0")/.."
root=${ROOT:-runs/study}
seeds=${SEEDS:-"0 1 2"}
labels=${LABELS:-"10 100 0"}
strategies=${STRATEGIES:-"probe head scratch top1 full two_phase residual bottleneck lora"}
jobs=${JOBS:-2}
steps=${STEPS:-200}
bin=${BIN:-$PWD/build/shiftlab}
[ -x "$bin" ] || bash scripts/build.sh
for d in fashion-mnist mnist; do "$bin" data prepare $d >/dev/null; done
mkdir -p "$root"
cfg=configs/study/mnist_few_labels.ini

pre=${PRETRAINED:-$root/fashion_resnet18.safetensors}
if [ ! -f "$pre" ]; then
  echo "== pretrain ResNet-18 on Fashion-MNIST ($(( ${PRETRAIN_STEPS:-500} * 128 )) images)"
  nice -n 5 "$bin" train --config configs/pretrain/fashion_resnet18.ini --run.root="$root" --run.name=pretrain \
    --run.threads=$jobs --train.steps=${PRETRAIN_STEPS:-500} --run.log_level=warn | tail -n 1
  run=$(ls -d "$root"/pretrain/*/ | tail -n 1)
  "$bin" weights export "$run" "$pre.tmp.safetensors" && mv "$pre.tmp.safetensors" "$pre"
fi

# Options of a strategy (a function, not an associative array: xargs' shells inherit functions).
# two_phase: phase 1 (head) + phase 2 (all) share the same step budget as the others.
opts_of() {  # STRATEGY -> train options
  local w="--model.weights=$pre" frozen="--model.weights=$pre --model.freeze=backbone --optim.lr=0.05"
  case $1 in
    scratch) echo "--model.freeze=none --optim.lr=0.05 --train.steps=$steps" ;;
    head) echo "$frozen --train.steps=$steps" ;;
    top1) echo "$w --model.freeze=top:1 --optim.lr=0.01 --train.steps=$steps" ;;
    full) echo "$w --model.freeze=none --optim.lr=0.01 --optim.layer_decay=0.5 --train.steps=$steps" ;;
    two_phase) echo "$w --model.freeze=none --optim.lr=0.01 --optim.layer_decay=0.5 --train.phase1_steps=$(( steps / 2 ))" \
                    "--train.phase1_lr=0.05 --schedule.warmup=10 --train.steps=$(( steps / 2 ))" ;;
    residual) echo "$frozen --model.adapters=residual@layer3,layer4 --train.steps=$steps" ;;
    bottleneck) echo "$frozen --model.adapters=bottleneck(dim=64)@layer1,layer2,layer3,layer4 --train.steps=$steps" ;;
    lora) echo "$frozen --model.adapters=lora(r=8,alpha=16)@layer3.*.conv*,layer4.*.conv* --train.steps=$steps" ;;
    *) echo "unknown strategy '$1'" >&2; return 1 ;;
  esac
}

one() {  # STRATEGY N SEED
  local v=$1 n=$2 s=$3
  local tag=$([ "$n" = 0 ] && echo all || echo $n)
  local name="n$tag/$v/seed$s" dir="$root/n$tag/$v/seed$s"
  local data="--data.source.per_class=$n --data.source.subset_seed=$s"
  if [ "$v" = probe ]; then
    [ -f "$dir/probe/probe.json" ] && { echo "skip $name (done)"; return 0; }
    mkdir -p "$dir"
    nice -n 10 "$bin" extract --config $cfg --model.weights="$pre" $data --run.seed=$s --run.threads=1 \
      --run.log_level=warn --taps=pooled --overwrite=true "$dir/features.h5" >/dev/null || return 1
    nice -n 10 "$bin" probe "$dir/features.h5" --probe.taps=pooled --probe.knn_k=0 --probe.distances=false \
      --probe.scores=false --probe.tsne=false --run.threads=1 --run.log_level=warn --out="$dir/probe" >/dev/null || return 1
    rm -f "$dir/features.h5"
    echo "done $name: $(/usr/bin/python3 -c "import json; t=json.load(open('$dir/probe/probe.json'))['taps'][0]['linear']; print('target %.2f %%' % t['target_acc'])")"
    return 0
  fi
  if ls "$dir"/*/summary.json >/dev/null 2>&1 && grep -q '"completed"' "$dir"/*/summary.json; then
    echo "skip $name (done)"; return 0
  fi
  local o
  o=$(opts_of "$v") || return 1
  rm -rf "$dir"
  # shellcheck disable=SC2086
  nice -n 10 "$bin" train --config $cfg $o $data --run.seed=$s --run.root="$root" --run.name="$name" \
    --run.threads=1 --run.log_level=warn 2>&1 | tail -n 1 | sed "s|^|done $name: |"
}
export -f one opts_of
export root bin cfg pre steps

# the strategies first (seed-major, so a partial run still covers every one), then the adapters,
# which run at ADAPTER_LABELS only (issue 6 compares them in the few-label regime)
adapter_labels=${ADAPTER_LABELS:-"10 100"}
list=$(for s in $seeds; do for n in $labels; do for v in $strategies; do
         case $v in residual|bottleneck|lora) ;; *) echo "$v $n $s" ;; esac; done; done; done
       for s in $seeds; do for n in $adapter_labels; do for v in $strategies; do
         case $v in residual|bottleneck|lora) echo "$v $n $s" ;; esac; done; done; done)
echo "$list" | xargs -P "$jobs" -L 1 bash -c 'one "$0" "$1" "$2"'
# the table (strategies x labels per class, 0 = all; difference to scratch), study.csv and the chart
"$bin" report "$root"/n* --by path:0 --pivot data.source.per_class --columns trainable,selected --baseline scratch \
  --chart "$root/study.svg" --out "$root" --curves=false
