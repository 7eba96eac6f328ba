#!/usr/bin/env bash
# Transfer-strategy study (README "Transfer strategies", issue 8) and the few-label adapter
# comparison (issue 6): MNIST with 10 / 100 / all (~700) labels per class, from a ResNet-18
# pretrained here on Fashion-MNIST.
#  1. pretrain (configs/pretrain/fashion_resnet18.ini) and export the backbone (skipped when
#     $ROOT/fashion_resnet18.safetensors exists; PRETRAINED=FILE uses a given export);
#  2. per labels-per-class N and seed: scratch, linear probe (extract + L-BFGS probe), head only,
#     top-1 fine-tune, full fine-tune with discriminative LRs, two-phase (head, then full), and the
#     adapters residual / bottleneck / LoRA (frozen backbone) — configs/study/mnist_few_labels.ini;
#  3. scripts/study_table.py: Markdown table (mean ± std over seeds) + SVG (accuracy vs labels).
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

half=$(( steps / 2 ))
declare -A opts=(
  [scratch]="--model.freeze=none --optim.lr=0.05"
  [head]="--model.weights=$pre --model.freeze=backbone --optim.lr=0.05"
  [top1]="--model.weights=$pre --model.freeze=top:1 --optim.lr=0.01"
  [full]="--model.weights=$pre --model.freeze=none --optim.lr=0.01 --optim.layer_decay=0.5"
  [two_phase]="--model.weights=$pre --model.freeze=none --optim.lr=0.01 --optim.layer_decay=0.5 --train.phase1_steps=$half --train.phase1_lr=0.05 --schedule.warmup=10"
  [residual]="--model.weights=$pre --model.freeze=backbone --optim.lr=0.05 --model.adapters=residual@layer3,layer4"
  [bottleneck]="--model.weights=$pre --model.freeze=backbone --optim.lr=0.05 --model.adapters=bottleneck(dim=64)@layer1,layer2,layer3,layer4"
  [lora]="--model.weights=$pre --model.freeze=backbone --optim.lr=0.05 --model.adapters=lora(r=8,alpha=16)@layer3.*.conv*,layer4.*.conv*"
)

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
  rm -rf "$dir"
  local st=$steps  # two_phase: phase 1 (head) + phase 2 (all) = the same step budget as the others
  [ "$v" = two_phase ] && st=$(( steps / 2 ))
  # shellcheck disable=SC2086
  nice -n 10 "$bin" train --config $cfg ${opts[$v]} $data --run.seed=$s --run.root="$root" --run.name="$name" \
    --run.threads=1 --train.steps=$st --run.log_level=warn 2>&1 | tail -n 1 | sed "s|^|done $name: |"
}
export -f one
export root bin cfg pre steps
export OPTS_DUMP="$(declare -p opts)"

# the strategies first (seed-major, so a partial run still covers every one), then the adapters,
# which run at ADAPTER_LABELS only (issue 6 compares them in the few-label regime)
adapter_labels=${ADAPTER_LABELS:-"10 100"}
list=$(for s in $seeds; do for n in $labels; do for v in $strategies; do
         case $v in residual|bottleneck|lora) ;; *) echo "$v $n $s" ;; esac; done; done; done
       for s in $seeds; do for n in $adapter_labels; do for v in $strategies; do
         case $v in residual|bottleneck|lora) echo "$v $n $s" ;; esac; done; done; done)
echo "$list" | xargs -P "$jobs" -L 1 bash -c 'eval "$OPTS_DUMP"; one "$0" "$1" "$2"'
/usr/bin/python3 scripts/study_table.py "$root"
