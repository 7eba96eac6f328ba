#!/usr/bin/env bash
# Adapter experiments (README "Adapters"):
#  1. pretrain a ResNet-18 on Fashion-MNIST (configs/pretrain/fashion_resnet18.ini) and export its
#     backbone with `shiftlab weights export` (skipped when the .safetensors exists);
#  2. MNIST -> UCI digits with DANN from that backbone: head only (backbone frozen), residual,
#     bottleneck and LoRA adapters (backbone frozen), full fine-tuning; seeds 0..2;
#  3. a Markdown table (`shiftlab report`): target-test accuracy (mean ± std over seeds) vs trainable parameters.
# Runs are niced and single-threaded (shared CPU). Environment: ROOT (runs/adapters), SEEDS ("0 1 2"),
# STEPS (downstream steps, 200), VARIANTS ("head residual bottleneck lora full"), THREADS (1),
# PRETRAIN_STEPS (250, as the config).
set -euo pipefail
cd "$(dirname "$0")/.."
root=${ROOT:-runs/adapters}
seeds=${SEEDS:-"0 1 2"}
steps=${STEPS:-200}
threads=${THREADS:-1}
variants=${VARIANTS:-"head residual bottleneck lora full"}
bin=build/shiftlab
[ -x $bin ] || bash scripts/build.sh
for d in fashion-mnist mnist uci-digits; do $bin data prepare $d >/dev/null; done
mkdir -p "$root"

pre=$root/fashion_resnet18.safetensors
if [ ! -f "$pre" ]; then
  echo "== pretrain ResNet-18 on Fashion-MNIST"
  nice -n 10 $bin train --config configs/pretrain/fashion_resnet18.ini --run.root="$root" --run.name=pretrain \
    --run.threads=$threads --train.steps=${PRETRAIN_STEPS:-250} --run.log_level=warn | tail -n 1
  run=$(ls -d "$root"/pretrain/*/ | tail -n 1)
  $bin weights export "$run" "$pre"
fi

declare -A adapt=(
  [head]="--model.freeze=backbone"
  [residual]="--model.freeze=backbone --model.adapters=residual@layer3,layer4"
  [bottleneck]="--model.freeze=backbone --model.adapters=bottleneck(dim=64)@layer1,layer2,layer3,layer4"
  [lora]="--model.freeze=backbone --model.adapters=lora(r=8,alpha=16)@layer3.*.conv*,layer4.*.conv*"
  [full]="--model.freeze=none"
)
for s in $seeds; do  # seed-major: a partial run still covers every variant
  for v in $variants; do
    name="mnist_to_uci/$v/seed$s"
    if ls "$root/$name"/*/summary.json >/dev/null 2>&1 && grep -q '"completed"' "$root/$name"/*/summary.json; then
      echo "skip $name (done)"; continue
    fi
    echo "== $name"
    # shellcheck disable=SC2086
    nice -n 10 $bin train --config configs/adapters/mnist_to_uci_resnet18.ini --model.weights="$pre" \
      ${adapt[$v]} --run.seed=$s --run.root="$root" --run.name="$name" --run.threads=$threads \
      --train.steps=$steps --run.log_level=warn | tail -n 1
  done
done
# the variants are the directories below the task: path:0
$bin report "$root/mnist_to_uci" --by path:0 --columns trainable,method_params,selected,oracle,seconds --curves=false
