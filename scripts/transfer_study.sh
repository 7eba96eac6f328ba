#!/usr/bin/env bash
# Transfer-strategy study (issue 20 section 3; README "Transfer strategies"), two pairs:
#   near  MNIST-pretrained ResNet-18 -> UCI digits, 1 / 5 / 10 / all (~126) labels per class
#         (configs/pretrain/mnist_resnet18.ini, configs/study/uci_few_labels.ini)
#   far   Fashion-MNIST-pretrained ResNet-18 -> MNIST, 10 / 100 / all (~700) labels per class
#         (configs/pretrain/fashion_resnet18.ini, configs/study/mnist_few_labels.ini)
#   reverse  the near pair's MNIST-pretrained ResNet-18 -> Fashion-MNIST, 10 / 100 labels per class
#         (configs/study/fashion_few_labels.ini; run after the advise size rules were set from the
#         other two pairs, to check them on a pair they were not fitted to)
# Per pair: 1. pretrain and export the backbone (skipped when <root>/<pair>_pretrained.safetensors
# exists); 2. one resumable `shiftlab sweep` per strategy (configs/study/strategies/<s>.ini) and seed
# (seed-major order) over a learning-rate grid x labels per class (each seed draws its own labelled subset:
# --seed_keys data.source.subset_seed), every run trained until source-val stops improving (the
# study configs: eval every 100 steps, early stop after 5 without improvement, at most 3,000 steps).
# The grid runs on the tuning seeds (TUNE_SEEDS, default the first seed); every other seed runs
# only the learning rate chosen per labels count on the tuning seeds' source-val (`report --tune`,
# <root>/<pair>/<strategy>/tuned/tune.csv), which cuts the study by ~45 % at 3 seeds;
# 3. the linear probe (`shiftlab extract` + `shiftlab probe`, L-BFGS, C chosen on the same few-label
# validation subset) per labels x seed, and on the same cache `shiftlab advise` (the seed guides'
# strategy table applied to that evidence: <root>/<pair>/probe/n<labels>/seed<s>/advice.txt); 4. `shiftlab report`: the table with each cell's learning
# rate chosen on source-val (--tune optim.lr; no target labels), differences to scratch (also paired
# by seed, with t) and the chart (<root>/<pair>/results.md, study.svg), every row against the head
# paired by seed (<root>/<pair>/paired_vs_head/results.md), and the whole grid (<root>/<pair>/grid/results.md).
# Resumable: finished runs are skipped, interrupted ones resume. Wall times: <root>/wall_times.txt.
# Usage: scripts/transfer_study.sh [root] [extra --key=value overrides for every training run]
# Env: PAIRS ("near far"), STRATEGIES (all of configs/study/strategies + probe), SEEDS (0,1,2),
#      TUNE_SEEDS (seeds that run the whole learning-rate grid; default the first of SEEDS),
#      LABELS_NEAR (1,5,10,0), LABELS_FAR (10,100,0; 0 = all), LABELS_REVERSE (10,100), LRS (override every strategy's grid),
#      JOBS (2), PRETRAIN_STEPS (500), SHIFTLAB (binary)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
root=${1:-results/transfer_study}
shift || true
bin=${SHIFTLAB:-build/shiftlab}
[ -x "$bin" ] || bash scripts/build.sh shiftlab_bin
seeds=${SEEDS:-0,1,2}
tune_seeds=${TUNE_SEEDS:-${seeds%%,*}}
jobs=${JOBS:-2}
strategies=${STRATEGIES:-"scratch head top1 top2 full full_bn_frozen two_phase residual bottleneck lora probe"}
mkdir -p "$root"
lr_grid() {  # the grid of a strategy: random or frozen backbones take larger steps than fine-tuning
  [ -n "${LRS:-}" ] && { echo "$LRS"; return; }
  case $1 in scratch|head|residual|bottleneck|lora) echo 0.01,0.03,0.1 ;; *) echo 0.003,0.01,0.03 ;; esac
}
tuned_lrs() {  # PAIR STRATEGY: "labels lr" lines, the lr chosen per labels count on the tuning seeds
  local dirs=() t
  for t in ${tune_seeds//,/ }; do dirs+=("$root/$1/$2/seed$t"); done
  "$bin" report "${dirs[@]}" --by data.source.per_class --tune optim.lr --out "$root/$1/$2/tuned" \
    --curves=false --run.log_level=warn >/dev/null
  awk -F, 'NR > 1 && $6 == 1 { print $1, $2 }' "$root/$1/$2/tuned/tune.csv"
}
timed() {  # LABEL command...: runs it, appends its wall time to <root>/wall_times.txt unless it was a
  # sweep with nothing left to run (a resumed study does not log "0 s" for the parts it skips)
  local label=$1 start out rc=0; shift
  start=$(date +%s) out=$(mktemp)
  "$@" | tee "$out" || rc=$?
  grep -q ' already completed, 0 to run,' "$out" ||
    echo "$label: $(( $(date +%s) - start )) s wall" >> "$root/wall_times.txt"
  rm -f "$out"
  return "$rc"
}

for pair in ${PAIRS:-near far}; do
  pre_of=  # the pair whose pretrained backbone this one transfers (default: its own)
  case $pair in
    near) cfg=configs/study/uci_few_labels.ini pre_cfg=configs/pretrain/mnist_resnet18.ini
          labels=${LABELS_NEAR:-1,5,10,0} datasets="mnist uci-digits" ;;
    far)  cfg=configs/study/mnist_few_labels.ini pre_cfg=configs/pretrain/fashion_resnet18.ini
          labels=${LABELS_FAR:-10,100,0} datasets="fashion-mnist mnist" ;;
    # the far shift the other way round, from the near pair's MNIST backbone (the size rules' check)
    reverse) cfg=configs/study/fashion_few_labels.ini pre_cfg=configs/pretrain/mnist_resnet18.ini pre_of=near
          labels=${LABELS_REVERSE:-10,100} datasets="mnist fashion-mnist" ;;
    *) echo "unknown pair '$pair' (near, far, reverse)" >&2; exit 2 ;;
  esac
  for d in $datasets; do "$bin" data prepare "$d" >/dev/null; done
  pre_of=${pre_of:-$pair}
  pre=$root/${pre_of}_pretrained.safetensors
  if [ ! -f "$pre" ]; then
    echo "== $pre_of: pretrain ($pre_cfg, ${PRETRAIN_STEPS:-500} steps)"
    rm -rf "$root/pretrain_$pre_of"
    timed "$pre_of pretrain" "$bin" train --config "$pre_cfg" --run.root="$root" --run.name="pretrain_$pre_of" \
      --run.threads="$jobs" --train.steps="${PRETRAIN_STEPS:-500}" --run.log_level=warn | tail -n 1
    run=$(ls -d "$root/pretrain_$pre_of"/*/ | tail -n 1)
    "$bin" weights export "$run" "$pre.tmp.safetensors" && mv "$pre.tmp.safetensors" "$pre"
  fi
  # seed-major: every strategy's seed 0 first, so a partial study already covers every cell
  for seed in ${seeds//,/ }; do
    for s in $strategies; do
      if [ "$s" = probe ]; then
        for n in ${labels//,/ }; do
          dir=$root/$pair/probe/n$n/seed$seed
          [ -f "$dir/probe.json" ] && [ -f "$dir/advice.ini" ] && continue
          mkdir -p "$(dirname "$dir")"
          echo "== $pair: linear probe, $n labels per class (0 = all), seed $seed"
          "$bin" extract --config "$cfg" --model.weights="$pre" --data.source.per_class="$n" \
            --data.source.subset_seed="$seed" --run.seed="$seed" --run.threads=1 --run.log_level=warn \
            --taps=pooled --overwrite=true "$dir.features.h5" >/dev/null
          "$bin" probe "$dir.features.h5" --probe.taps=pooled --probe.knn_k=0 --probe.distances=false \
            --probe.scores=false --probe.tsne=false --run.threads=1 --run.log_level=warn --out="$dir" >/dev/null
          # what the seed guides' table (as `shiftlab advise` applies it) recommends for this cell
          "$bin" advise "$dir.features.h5" --probe.taps=pooled --run.threads=1 --run.log_level=warn \
            --out="$dir/advice.ini" > "$dir/advice.txt"
          rm -f "$dir.features.h5"
        done
        continue
      fi
      [ -f "configs/study/strategies/$s.ini" ] || { echo "unknown strategy '$s'" >&2; exit 2; }
      weights=(--model.weights="$pre")
      [ "$s" = scratch ] && weights=()
      if [[ ",$tune_seeds," == *",$seed,"* ]]; then
        echo "== $pair: $s, lr $(lr_grid "$s"), labels per class $labels, seed $seed -> $root/$pair/$s/seed$seed"
        timed "$pair $s seed $seed" "$bin" sweep --config "$cfg" --config "configs/study/strategies/$s.ini" \
          --grid optim.lr="$(lr_grid "$s")" --grid data.source.per_class="$labels" --seeds "$seed" \
          --seed_keys data.source.subset_seed --jobs "$jobs" --run.threads=1 --run.log_level=warn \
          --out "$root/$pair/$s/seed$seed" "${weights[@]}" "$@" | tail -n 4 ||
          echo "   some runs failed (the study goes on): see $root/$pair/$s/seed$seed/logs/" >&2
        continue
      fi
      # the other seeds: each labels count at its learning rate chosen on the tuning seeds, $jobs at a time
      start=$(date +%s) failed=0 outs=$(mktemp -d)
      while read -r n lr; do
        [[ ",$labels," == *",$n,"* ]] || continue
        echo "== $pair: $s, lr $lr (chosen on seed(s) $tune_seeds), labels per class $n, seed $seed -> $root/$pair/$s/seed$seed/n$n"
        "$bin" sweep --config "$cfg" --config "configs/study/strategies/$s.ini" --optim.lr="$lr" \
          --data.source.per_class="$n" --seeds "$seed" --seed_keys data.source.subset_seed --jobs 1 --run.threads=1 \
          --run.log_level=warn --out "$root/$pair/$s/seed$seed/n$n" "${weights[@]}" "$@" > "$outs/n$n.out" &
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || failed=1; done
      done < <(tuned_lrs "$pair" "$s")
      while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
      # logged unless every cell's sweep had nothing left to run (a resumed study logs no "1 s")
      if grep -L ' already completed, 0 to run,' "$outs"/*.out 2>/dev/null | grep -q .; then
        echo "$pair $s seed $seed: $(( $(date +%s) - start )) s wall" >> "$root/wall_times.txt"
      fi
      rm -rf "$outs"
      [ "$failed" = 0 ] || echo "   some runs failed: see $root/$pair/$s/seed$seed/n*/runs/*/*/log.txt" >&2
    done
  done
  # each cell's learning rate chosen on source-val; then the whole grid, every learning rate a row
  baseline=()
  [[ " $strategies " == *" scratch "* ]] && baseline=(--baseline scratch)
  [ ${#baseline[@]} = 0 ] || baseline+=(--paired)
  "$bin" report "$root/$pair" --by path:0 --pivot data.source.per_class --pivot_order "$labels" --tune optim.lr \
    --columns trainable,selected "${baseline[@]}" --chart "$root/$pair/study.svg" --out "$root/$pair" --curves=false
  # the seed guides' question (is feature extraction enough?): every row against the frozen backbone's
  # head, paired by seed
  if [[ " $strategies " == *" head "* ]]; then
    "$bin" report "$root/$pair" --by path:0 --pivot data.source.per_class --pivot_order "$labels" --tune optim.lr \
      --columns selected --baseline head --paired --out "$root/$pair/paired_vs_head" --curves=false >/dev/null
  fi
  "$bin" report "$root/$pair" --by path:0,optim.lr --pivot data.source.per_class --pivot_order "$labels" \
    --columns selected,source_val \
    --out "$root/$pair/grid" --curves=false >/dev/null
done
