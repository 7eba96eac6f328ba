# Shared by the benchmark scripts (sourced): the JPEG class folder and the ResNet-18 options.

# bench_jpeg_folder BIN PY SRC DIR: 2,000 Fashion-MNIST test images as a JPEG class folder in DIR,
# with TLlib list files DIR/all.txt (every image: training) and DIR/eval.txt (64 of them: the
# end-of-run evaluation). Made once (DIR/.done); the images come from DIR/../data.
bench_jpeg_folder() {
  local bin="$1" py="$2" src="$3" dir="$4"
  [ -f "$dir/.done" ] && return 0
  "$bin" data prepare fashion-mnist --data.root="$dir/../data" >/dev/null
  rm -rf "$dir"
  "$py" "$src/bench/loader_bench.py" make "$dir/../data/fashion-mnist/test_images.npy" "$dir" 2000
  (cd "$dir" && k=0 && for c in $(ls -d */ | sort); do
     find "${c%/}" -name '*.jpg' | sort | sed "s/\$/ $k/"; k=$((k + 1)); done) > "$dir/all.txt"
  awk 'NR % 32 == 0' "$dir/all.txt" > "$dir/eval.txt"
  touch "$dir/.done"
}

# resnet_args DIR PX EVAL_RESIZE WORKERS PRELOAD: sets the array RESNET_ARGS — ResNet-18 + bottleneck
# head, SGD 0.01 (momentum 0.9, wd 5e-4, annealing), both domains on DIR/all.txt at PX px
# (random-resized-crop + flip + ImageNet normalisation; eval: resize(EVAL_RESIZE), centre crop),
# batches of 64, source-val DIR/eval.txt. The caller adds --method and the target-test choice.
resnet_args() {
  local dir="$1" px="$2" eval_resize="$3" workers="$4" preload="$5" d
  RESNET_ARGS=(--model.backbone=resnet18 --model.in_channels=3 --model.head=bottleneck --optim.name=sgd
    --optim.lr=0.01 --optim.momentum=0.9 --optim.weight_decay=0.0005 --schedule.name=annealing
    --data.source.val_split="$dir/eval.txt")
  for d in source target; do
    RESNET_ARGS+=(--data.$d.dataset=list_file --data.$d.root="$dir" --data.$d.split="$dir/all.txt"
      --data.$d.transform="random_resized_crop($px), hflip, normalize(imagenet)"
      --data.$d.eval_transform="resize($eval_resize), center_crop($px), normalize(imagenet)"
      --data.$d.batch_size=64 --data.$d.workers="$workers" --data.$d.preload="$preload")
  done
}
