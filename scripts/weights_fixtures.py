#!/usr/bin/python3
"""Test fixtures for shiftlab's weight readers, written by independent Python code.

  weights_fixtures.py safetensors OUT      every dtype, values by formula (see dtype_fixture)
  weights_fixtures.py pth DIR              torch.save files of many kinds, each X.pth with the
                                           tensors it must load to in X.expected.safetensors
  weights_fixtures.py timm-adapt IN OUT C,C..  timm's adapt_input_conv applied to IN["weight"] (OUT: c<C>)
"""
import collections
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402
from safetensors_np import BF16  # noqa: E402


def dtype_fixture():
    """Element k of a 2×3 tensor (k = 0..5):
       floats (F64 F32 F16 BF16): 1.5 k - 4;   I64: 2^40 + 37 k - 100;   I32/I16/I8: 37 k - 100;
       U8: 37 k;   BOOL: k odd.   Plus "scalar" (F32, shape [], 7.25) and "empty" (F32, shape [0, 3])."""
    k = np.arange(6).reshape(2, 3)
    f = 1.5 * k - 4
    t = {
        "f64": f.astype("<f8"), "f32": f.astype("<f4"), "f16": f.astype("<f2"), "bf16": BF16.from_f32(f),
        "i64": (2 ** 40 + 37 * k - 100).astype("<i8"), "i32": (37 * k - 100).astype("<i4"),
        "i16": (37 * k - 100).astype("<i2"), "i8": (37 * k - 100).astype("i1"), "u8": (37 * k).astype("u1"),
        "bool": (k % 2 == 1), "scalar": np.array(7.25, dtype="<f4"), "empty": np.zeros((0, 3), dtype="<f4"),
    }
    return t


def write_safetensors(out):
    t = dtype_fixture()
    # data section deliberately not in name order
    safetensors_np.save(out, t, {"framework": "numpy", "note": "fixture"}, order=sorted(t, reverse=True))


class Evil:
    """Pickles to a call of os.system that creates the file named by $SHIFTLAB_PWNED when the
    pickle is loaded: a safe reader must never run it."""

    def __reduce__(self):
        return (os.system, ('touch "$SHIFTLAB_PWNED"',))


def write_pth(d):
    import torch
    import torch.nn as nn
    os.makedirs(d, exist_ok=True)

    def expected(name, sd):
        t = {}
        for k, v in sd.items():
            if isinstance(v, torch.Tensor):
                v = v.detach().contiguous()
                t[k] = BF16(v.view(torch.int16).numpy().view("<u2")) if v.dtype == torch.bfloat16 else v.numpy()
        safetensors_np.save(os.path.join(d, name + ".expected.safetensors"), t)

    g = torch.Generator().manual_seed(0)
    # 1. a plain dict, every dtype, a non-contiguous view and two views of one storage
    base = torch.randn(4, 6, generator=g)
    plain = {
        "w": torch.randn(3, 4, generator=g), "wt": torch.randn(4, 3, generator=g).t(),
        "part_a": base[1:3], "part_b": base[:, 2],
        "f64": torch.randn(5, generator=g, dtype=torch.float64), "f16": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(5, generator=g).bfloat16(), "i64": torch.arange(-3, 3) * (2 ** 40),
        "i32": torch.arange(6, dtype=torch.int32) - 2, "u8": torch.arange(250, 256, dtype=torch.uint8),
        "b": torch.tensor([True, False, True]), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3),
    }
    torch.save(plain, os.path.join(d, "plain.pth"))
    expected("plain", plain)
    # 2. an nn.Module state dict: OrderedDict with _metadata (as torchvision publishes)
    torch.manual_seed(1)
    model = nn.Sequential(collections.OrderedDict([
        ("conv1", nn.Conv2d(3, 4, 3)), ("bn1", nn.BatchNorm2d(4)), ("fc", nn.Linear(4, 2))]))
    model.bn1.running_mean.uniform_(-1, 1)
    model.bn1.num_batches_tracked.fill_(7)
    sd = model.state_dict()
    assert isinstance(sd, collections.OrderedDict) and hasattr(sd, "_metadata")
    torch.save(sd, os.path.join(d, "ordered.pth"))
    expected("ordered", sd)
    # 3. the same, legacy (pre-1.6, non-zip) format, as many older torchvision downloads are
    torch.save(sd, os.path.join(d, "legacy.pth"), _use_new_zipfile_serialization=False)
    expected("legacy", sd)
    # 4. a training checkpoint with the state dict nested under "state_dict"
    torch.save({"epoch": 3, "state_dict": sd, "optimizer": {"lr": 0.1}}, os.path.join(d, "nested.pth"))
    expected("nested", sd)
    # 5. Parameters (not plain tensors) in the dict
    params = collections.OrderedDict((k, nn.Parameter(v.clone())) for k, v in sd.items() if v.is_floating_point())
    torch.save(params, os.path.join(d, "params.pth"))
    expected("params", params)
    # 6. a whole pickled module: refused (not a state dict)
    torch.save(model, os.path.join(d, "module.pth"))
    # 7. a dict with a malicious object next to a tensor: the tensor loads, nothing runs
    torch.save({"w": plain["w"], "evil": Evil()}, os.path.join(d, "evil.pth"))
    expected("evil", {"w": plain["w"]})
    # 8. not a torch file at all
    with open(os.path.join(d, "garbage.pth"), "wb") as f:
        f.write(b"hello, this is not a checkpoint\n" * 4)


def adapt_input_conv(in_chans, conv_weight):
    """timm.models.helpers.adapt_input_conv (timm 0.6-0.9), verbatim logic."""
    import torch
    conv_type = conv_weight.dtype
    conv_weight = conv_weight.float()
    O, I, J, K = conv_weight.shape
    if in_chans == 1:
        if I > 3:
            assert conv_weight.shape[1] % 3 == 0
            conv_weight = conv_weight.reshape(O, I // 3, 3, J, K)
            conv_weight = conv_weight.sum(dim=2, keepdim=False)
        else:
            conv_weight = conv_weight.sum(dim=1, keepdim=True)
    elif in_chans != 3:
        if I != 3:
            raise NotImplementedError("Weight format not supported by conversion.")
        repeat = int(math.ceil(in_chans / 3))
        conv_weight = conv_weight.repeat(1, repeat, 1, 1)[:, :in_chans, :, :]
        conv_weight *= (3 / float(in_chans))
    return conv_weight.to(conv_type)


def timm_adapt(inp, out, chans):
    """Writes OUT with one tensor "c<C>" per C in the comma-separated list `chans`."""
    import torch
    t, _ = safetensors_np.load(inp)
    w = torch.from_numpy(t["weight"])
    safetensors_np.save(out, {f"c{c}": adapt_input_conv(int(c), w).numpy() for c in chans.split(",")})


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "safetensors" and len(sys.argv) == 3:
        write_safetensors(sys.argv[2])
    elif cmd == "pth" and len(sys.argv) == 3:
        write_pth(sys.argv[2])
    elif cmd == "timm-adapt" and len(sys.argv) == 5:
        timm_adapt(*sys.argv[2:])
    else:
        sys.exit(__doc__)
