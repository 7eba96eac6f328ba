#!/usr/bin/python3
"""Convert PyTorch weights to .safetensors for shiftlab (parameter/buffer names are kept).

Sources (exactly one):
  --torchvision NAME   a torchvision model, e.g. resnet50, vit_b_16. With --weights DEFAULT (or a
                       weights enum name such as IMAGENET1K_V2) the pretrained weights are downloaded
                       (needs internet); with --random-init the model is built with seeded random
                       weights (offline; for tests and parity checks).
  --timm NAME          a timm model (pip install timm); pretrained unless --random-init.
  --pth FILE           a torch.save file: a state dict (dict / OrderedDict, torchvision's downloads),
                       a checkpoint holding one under --key (default: state_dict, model, ...), or a
                       whole pickled nn.Module (its state_dict() is taken; this runs the pickle, so
                       only use files you trust).

Examples:
  /usr/bin/python3 scripts/convert_weights.py --torchvision resnet50 --weights DEFAULT -o resnet50.safetensors
  /usr/bin/python3 scripts/convert_weights.py --pth resnet18-f37072fd.pth -o resnet18.safetensors
  /usr/bin/python3 scripts/convert_weights.py --torchvision resnet18 --random-init --seed 0 -o r18.safetensors

The file is written with the hand-written writer in safetensors_np.py (no `safetensors` package).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402


def to_numpy(t):
    import torch
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return safetensors_np.BF16(t.view(torch.int16).numpy().view("<u2"))
    if t.dtype not in (torch.float64, torch.float32, torch.float16, torch.int64, torch.int32, torch.int16,
                       torch.int8, torch.uint8, torch.bool):
        raise SystemExit(f"tensor dtype {t.dtype} cannot be stored in safetensors")
    return t.numpy()


def state_dict_from_pth(path, key):
    import torch
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        keys = [key] if key else ["state_dict", "model_state_dict", "model", "state", "module", "net"]
        if not any(isinstance(v, torch.Tensor) for v in obj.values()):
            for k in keys:
                v = obj.get(k)
                if isinstance(v, torch.nn.Module):
                    return v.state_dict()
                if isinstance(v, dict) and any(isinstance(x, torch.Tensor) for x in v.values()):
                    return v
        elif key:
            raise SystemExit(f"{path}: --key {key}: the top level already holds tensors")
        return obj
    raise SystemExit(f"{path}: holds a {type(obj).__name__}, not a state dict or module")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--torchvision", metavar="NAME")
    src.add_argument("--timm", metavar="NAME")
    src.add_argument("--pth", metavar="FILE")
    ap.add_argument("--weights", default="DEFAULT", help="torchvision weights name (default DEFAULT)")
    ap.add_argument("--random-init", action="store_true", help="no download: seeded random weights")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-classes", type=int, default=None, help="head size for --random-init")
    ap.add_argument("--key", default=None, help="checkpoint key holding the state dict (--pth)")
    ap.add_argument("--strip-prefix", default=None, help="remove this prefix from names, e.g. 'module.'")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()

    import torch
    meta = {"format": "pt"}
    if a.torchvision:
        import torchvision
        kw = {}
        if a.num_classes:
            kw["num_classes"] = a.num_classes
        torch.manual_seed(a.seed)
        if a.random_init:
            model = torchvision.models.get_model(a.torchvision, weights=None, **kw)
            meta.update(source=f"torchvision:{a.torchvision}", weights=f"random(seed={a.seed})")
        else:
            try:
                model = torchvision.models.get_model(a.torchvision, weights=a.weights, **kw)
            except Exception as e:  # no internet, unknown weights name, ...
                raise SystemExit(f"cannot get torchvision weights '{a.weights}' for {a.torchvision}: {e}\n"
                                 "(no internet? download the .pth elsewhere and use --pth)")
            meta.update(source=f"torchvision:{a.torchvision}", weights=str(a.weights))
        sd = model.state_dict()
    elif a.timm:
        try:
            import timm
        except ImportError:
            raise SystemExit("--timm needs the timm package (pip install timm)")
        torch.manual_seed(a.seed)
        kw = {"num_classes": a.num_classes} if a.num_classes else {}
        model = timm.create_model(a.timm, pretrained=not a.random_init, **kw)
        meta.update(source=f"timm:{a.timm}", weights="random" if a.random_init else "pretrained")
        sd = model.state_dict()
    else:
        sd = state_dict_from_pth(a.pth, a.key)
        meta.update(source=os.path.basename(a.pth))

    tensors = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            print(f"skipping non-tensor entry {k!r}", file=sys.stderr)
            continue
        if a.strip_prefix and k.startswith(a.strip_prefix):
            k = k[len(a.strip_prefix):]
        tensors[k] = to_numpy(v)
    tmp = a.output + ".tmp"
    safetensors_np.save(tmp, tensors, meta)
    os.replace(tmp, a.output)
    total = sum(int(getattr(v, "bits", v).size) for v in tensors.values())
    print(f"wrote {a.output}: {len(tensors)} tensors, {total} elements")


if __name__ == "__main__":
    main()
