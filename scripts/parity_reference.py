#!/usr/bin/python3
"""Reference outputs for the backbone parity tests (tests/test_models_parity.cpp).

usage: parity_reference.py OUTDIR GROUP [GROUP ...]
GROUP: lenet | resnet_basic | resnet50 | resnet_deep | vit_b_16 | vit_small | convnext | efficientnet |
       mobilenet_v3 | densenet

For each model of a group it builds the Python original (torchvision 0.14 classes, TLlib's
LeNet as written in tllib/vision/models/digits.py, and a re-implementation of timm's ViT with
timm's names), gives it seeded random weights with BatchNorm running statistics randomised
(so eval mode is a real test), and writes
  OUTDIR/<key>.weights.pt  {"q": {name: int8}, "scale": {name: float}, "raw": {name: tensor}}
      float tensors are stored as int8 × 2^k (k per tensor); the Python model runs with exactly
      those values, so the C++ side reconstructs bit-identical float32 weights at 1/4 the size
  OUTDIR/<key>.io.pt       {"x": input, "eval.<tap>": ..., "train.<tap>": ..., "after_train.<buffer>": ...,
                            "params": the backbone's parameter count, "grad.<name>": train-mode gradients of
                            sum(pooled ⊙ grad_r) (EfficientNet, MobileNetV3, DenseNet)}
Files are plain dicts saved with torch.save, read in C++ with torch::pickle_load.
"""
import math
import sys

import torch
import torch.nn as nn
import torchvision
from torchvision.models.vision_transformer import VisionTransformer

torch.set_num_threads(1)


def quantise_(model):
    """Round every float parameter/buffer to int8 × 2^k in place; return the packed state dict."""
    q, scale, raw = {}, {}, {}
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if t.is_floating_point():
                m = t.abs().max().item()
                s = 2.0 ** math.ceil(math.log2(m / 127.0)) if m > 0 else 1.0
                qi = torch.round(t / s).clamp_(-127, 127)
                t.data.copy_(qi * s)
                q[name] = qi.to(torch.int8).contiguous()
                scale[name] = s
            else:
                raw[name] = t.detach().clone()
    return {"q": q, "scale": scale, "raw": raw}


def randomise_bn_(model, g):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.num_batches_tracked.fill_(7)


def save(outdir, key, packed, io):
    torch.save(packed, f"{outdir}/{key}.weights.pt")
    torch.save({k: v.detach().contiguous() for k, v in io.items()}, f"{outdir}/{key}.io.pt")


# ------------------------------------------------------------------ LeNet (TLlib digits.py)
def tllib_lenet(in_channels=1):
    # tllib.vision.models.digits.LeNet: an nn.Sequential, features = 500
    return nn.Sequential(
        nn.Conv2d(in_channels, 20, kernel_size=5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(20, 50, kernel_size=5), nn.Dropout2d(p=0.5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(start_dim=1), nn.Linear(50 * 4 * 4, 500), nn.ReLU(), nn.Dropout(p=0.5))


def group_lenet(outdir):
    for key, cin in (("lenet", 1), ("lenet_c3", 3)):
        torch.manual_seed(1)
        m = tllib_lenet(cin)
        packed = quantise_(m)
        x = torch.randn(3, cin, 28, 28)
        io = {"x": x}
        m.eval()
        with torch.no_grad():
            io["eval.conv1"] = m[:3](x)
            io["eval.conv2"] = m[:7](x)
            io["eval.pooled"] = m(x)
            m.train()
            torch.manual_seed(123)  # dropout masks: C++ seeds the same generator identically
            io["train.pooled"] = m(x)
        save(outdir, key, packed, io)


# ------------------------------------------------------------------ ResNet (torchvision)
def resnet_io(m, x, small_stem=False):
    def feats(m, x):
        out = {}
        x = m.relu(m.bn1(m.conv1(x)))
        x = m.maxpool(x)
        out["stem"] = x
        for i in range(1, 5):
            x = getattr(m, f"layer{i}")(x)
            out[f"layer{i}"] = x
        out["pooled"] = torch.flatten(m.avgpool(x), 1)
        return out

    io = {"x": x}
    m.fc = nn.Identity()
    with torch.no_grad():
        m.eval()
        f = feats(m, x)
        assert torch.equal(f["pooled"], m(x))
        for k in ("stem", "layer4", "pooled"):
            io["eval." + k] = f[k]
        m.train()
        io["train.pooled"] = m(x)
    last = [n for n, mod in m.named_modules() if isinstance(mod, nn.BatchNorm2d)][-1]
    io["after_train.bn1.running_mean"] = m.bn1.running_mean
    io[f"after_train.{last}.running_var"] = m.get_submodule(last).running_var
    io[f"after_train.{last}.num_batches_tracked"] = m.get_submodule(last).num_batches_tracked
    return io


def build_resnet(outdir, key, arch, small_stem=False, size=64):
    torch.manual_seed(2)
    g = torch.Generator().manual_seed(3)
    m = getattr(torchvision.models, arch)(weights=None)
    if small_stem:  # the CIFAR-style stem: 3×3 stride-1 conv1, no max-pool
        m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        m.maxpool = nn.Identity()
    randomise_bn_(m, g)
    m.fc = nn.Identity()  # the classifier is not part of the backbone
    packed = quantise_(m)
    x = torch.randn(2, 3, size, size, generator=g)
    save(outdir, key, packed, resnet_io(m, x, small_stem))


def group_resnet_basic(outdir):
    build_resnet(outdir, "resnet18", "resnet18")
    build_resnet(outdir, "resnet34", "resnet34")
    build_resnet(outdir, "resnet18_small_stem", "resnet18", small_stem=True, size=32)


def group_resnet50(outdir):
    build_resnet(outdir, "resnet50", "resnet50")


def group_resnet_deep(outdir):
    build_resnet(outdir, "resnet101", "resnet101", size=32)
    build_resnet(outdir, "resnet152", "resnet152", size=32)


# ------------------------------------------------------------------ ViT (torchvision)
def tv_vit_io(m, x):
    io = {"x": x}
    taps = {}
    hooks = [blk.register_forward_hook(lambda mod, i, o, n=n: taps.__setitem__(n, o))
             for n, blk in [(f"blocks.{i}", b) for i, b in enumerate(m.encoder.layers)] + [("norm", m.encoder.ln)]]
    m.heads = nn.Identity()
    with torch.no_grad():
        m.eval()
        io["eval.pooled"] = m(x)
        io["eval.blocks.0"] = taps["blocks.0"]
        io["eval.norm"] = taps["norm"]
        io["eval.mean_pooled"] = taps["norm"][:, 1:].mean(1)
        m.train()
        io["train.pooled"] = m(x)
    for h in hooks:
        h.remove()
    return io


def randomise_vit_(m, g):
    # non-trivial LayerNorm affine and biases (torchvision initialises many of them to 1 / 0)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 1:
                base = 1.0 if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln.weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
        for name in ("class_token",):
            getattr(m, name).copy_(0.5 * torch.randn(getattr(m, name).shape, generator=g))


def group_vit_b_16(outdir):
    torch.manual_seed(4)
    g = torch.Generator().manual_seed(5)
    m = torchvision.models.vit_b_16(weights=None, image_size=32)
    randomise_vit_(m, g)
    m.heads = nn.Identity()
    packed = quantise_(m)
    x = torch.randn(2, 3, 32, 32, generator=g)
    save(outdir, "vit_b_16", packed, tv_vit_io(m, x))


# ------------------------------------------------------------------ ViT (timm names)
class TimmAttention(nn.Module):  # timm.models.vision_transformer.Attention
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class TimmMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class TimmBlock(nn.Module):
    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = TimmAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = TimmMlp(dim, mlp)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TimmPatchEmbed(nn.Module):
    def __init__(self, cin, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TimmViT(nn.Module):
    def __init__(self, img, patch, dim, depth, heads, mlp):
        super().__init__()
        self.patch_embed = TimmPatchEmbed(3, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + (img // patch) ** 2, dim))
        self.blocks = nn.Sequential(*[TimmBlock(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward_features(self, x):
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.pos_embed
        return self.norm(self.blocks(x))


def tv_to_timm(sd, depth):
    out = {"patch_embed.proj.weight": sd["conv_proj.weight"], "patch_embed.proj.bias": sd["conv_proj.bias"],
           "cls_token": sd["class_token"], "pos_embed": sd["encoder.pos_embedding"],
           "norm.weight": sd["encoder.ln.weight"], "norm.bias": sd["encoder.ln.bias"]}
    names = {"ln_1": "norm1", "self_attention.in_proj_weight": "attn.qkv.weight",
             "self_attention.in_proj_bias": "attn.qkv.bias", "self_attention.out_proj": "attn.proj",
             "ln_2": "norm2", "mlp.0": "mlp.fc1", "mlp.3": "mlp.fc2"}
    for i in range(depth):
        for k, v in sd.items():
            pre = f"encoder.layers.encoder_layer_{i}."
            if k.startswith(pre):
                rest = k[len(pre):]
                for a, b in names.items():
                    if rest.startswith(a):
                        out[f"blocks.{i}." + b + rest[len(a):]] = v
    assert len(out) == len(sd), (len(out), len(sd))
    return out


def group_vit_small(outdir):
    # a small torchvision VisionTransformer (patch 8, 2 blocks) and the same weights in a
    # timm-named re-implementation: both must agree here, and C++ must match each.
    cfg = dict(img=32, patch=8, dim=64, depth=2, heads=4, mlp=128)
    torch.manual_seed(6)
    g = torch.Generator().manual_seed(7)
    m = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128)
    randomise_vit_(m, g)
    m.heads = nn.Identity()
    packed = quantise_(m)
    x = torch.randn(3, 3, 32, 32, generator=g)
    io = tv_vit_io(m, x)
    save(outdir, "vit_tv_small", packed, io)

    t = TimmViT(**cfg)
    t.load_state_dict(tv_to_timm(m.state_dict(), cfg["depth"]), strict=True)
    t.eval()
    with torch.no_grad():
        tok = t.forward_features(x)
    assert (tok[:, 0] - io["eval.pooled"]).abs().max() < 1e-5, "timm re-implementation disagrees with torchvision"
    tio = {"x": x, "eval.pooled": tok[:, 0], "eval.mean_pooled": tok[:, 1:].mean(1), "eval.norm": tok}
    save(outdir, "vit_timm_small", quantise_(t), tio)


# ------------------------------------------------------------------ ConvNeXt-Tiny (torchvision)
def group_convnext(outdir):
    torch.manual_seed(8)
    g = torch.Generator().manual_seed(9)
    m = torchvision.models.convnext_tiny(weights=None, stochastic_depth_prob=0.0)
    with torch.no_grad():  # layer_scale starts at 1e-6 (blocks ≈ identity): make every branch count
        for name, p in m.named_parameters():
            if name.endswith("layer_scale"):
                p.copy_(0.2 + 0.3 * torch.rand(p.shape, generator=g))
            elif p.dim() == 1:
                base = 1.0 if name.endswith("weight") else 0.0  # LayerNorm weights / biases
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
    m.classifier[2] = nn.Identity()  # the head; classifier.0 (LayerNorm2d) stays in the backbone
    packed = quantise_(m)
    x = torch.randn(2, 3, 64, 64, generator=g)
    io = {"x": x}
    with torch.no_grad():
        m.eval()
        h = m.features[0](x)
        io["eval.stem"] = h
        for k, i in enumerate((1, 3, 5, 7)):
            if i > 1:
                h = m.features[i - 1](h)
            h = m.features[i](h)
            io[f"eval.stage{k + 1}"] = h
        io["eval.pooled"] = m(x)
        m.train()
        io["train.pooled"] = m(x)
    save(outdir, "convnext_tiny", packed, io)


# ------------------------------------------------------------------ EfficientNet, MobileNetV3, DenseNet
def randomise_conv_biases_(model, g):
    # torchvision zero-initialises the biases of the SE convs and Linears: make them count
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)) and mod.bias is not None:
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def conv_family_io(m, x, stages, pooled, grads, train_seed=None):
    """stages: [(tap name, module)] run in order; pooled(h) -> the pooled features from the last stage output.
    Eval taps, train-mode pooled (batch statistics; stochastic depth drawn after torch.manual_seed(train_seed)),
    the gradients of sum(pooled ⊙ r) (r = io["grad_r"]) with respect to the parameters named in `grads`
    (through the in-place activations), and three BatchNorm buffers after that one train-mode forward."""
    io = {"x": x, "params": torch.tensor(n_params(m), dtype=torch.int64)}
    bns = [n for n, mod in m.named_modules() if isinstance(mod, nn.BatchNorm2d)]

    def run(x):
        h, out = x, {}
        for name, mod in stages:
            h = mod(h)
            out[name] = h
        out["pooled"] = pooled(h)
        return out

    with torch.no_grad():
        m.eval()
        for k, v in run(x).items():
            io["eval." + k] = v
        assert torch.equal(io["eval.pooled"], m(x)), "the tap decomposition disagrees with the model's forward"
    m.train()
    if train_seed is not None:
        torch.manual_seed(train_seed)
    out = run(x)["pooled"]
    io["train.pooled"] = out.detach()
    io["grad_r"] = torch.randn(out.shape, generator=torch.Generator().manual_seed(99))
    m.zero_grad()
    (out * io["grad_r"]).sum().backward()
    params = dict(m.named_parameters())
    for n in grads:
        io["grad." + n] = params[n].grad.detach().clone()
    io[f"after_train.{bns[0]}.running_mean"] = m.get_submodule(bns[0]).running_mean
    io[f"after_train.{bns[-1]}.running_var"] = m.get_submodule(bns[-1]).running_var
    io[f"after_train.{bns[-1]}.num_batches_tracked"] = m.get_submodule(bns[-1]).num_batches_tracked
    return io


def build_efficientnet(outdir, arch, size, batch, full):
    torch.manual_seed(10)
    g = torch.Generator().manual_seed(11)
    m = getattr(torchvision.models, arch)(weights=None)  # stochastic_depth_prob 0.2 (torchvision's default)
    m.classifier = nn.Identity()  # Dropout + Linear: the head
    randomise_bn_(m, g)
    randomise_conv_biases_(m, g)
    packed = quantise_(m)
    x = torch.randn(batch, 3, size, size, generator=g)
    pool = lambda h: torch.flatten(m.avgpool(h), 1)
    if full:
        stages = [("stem", m.features[0])] + [(f"stage{k}", m.features[k]) for k in range(1, 8)] + \
                 [("last_conv", m.features[8])]
        io = conv_family_io(m, x, stages, pool, ["features.0.0.weight", "features.1.0.block.1.fc1.weight",
                                                  "features.8.1.weight"], train_seed=123)
    else:  # parameter count and the eval-mode pooled features only
        with torch.no_grad():
            m.eval()
            io = {"x": x, "params": torch.tensor(n_params(m), dtype=torch.int64), "eval.pooled": m(x)}
    save(outdir, arch, packed, io)


def group_efficientnet(outdir):
    build_efficientnet(outdir, "efficientnet_b0", 64, 2, True)
    for b in range(1, 5):
        build_efficientnet(outdir, f"efficientnet_b{b}", 32, 1, False)


def build_mobilenet_v3(outdir, arch):
    torch.manual_seed(12)
    g = torch.Generator().manual_seed(13)
    m = getattr(torchvision.models, arch)(weights=None)
    m.classifier[3] = nn.Identity()  # the head; classifier.0 (+ hard-swish) stays in the backbone
    randomise_bn_(m, g)
    randomise_conv_biases_(m, g)
    with torch.no_grad():  # torchvision's N(0, 0.01) classifier.0 would leave hard-swish near its origin
        m.classifier[0].weight.normal_(0, 0.1, generator=g)
    packed = quantise_(m)
    x = torch.randn(2, 3, 64, 64, generator=g)
    # stages start at the stride-2 blocks (torchvision marks them _is_cn)
    starts = [0] + [i for i, f in enumerate(m.features) if getattr(f, "_is_cn", False)] + [len(m.features) - 1]
    names = ["stem", "stage1", "stage2", "stage3", "stage4"]
    stages = [(names[k], m.features[starts[k]:starts[k + 1]]) for k in range(5)] + [("last_conv", m.features[-1])]
    pool = lambda h: m.classifier[1](m.classifier[0](torch.flatten(m.avgpool(h), 1)))  # no Dropout (head)
    io = conv_family_io(m, x, stages, pool, ["features.0.0.weight", "features.4.block.2.fc2.bias", "classifier.0.weight"])
    save(outdir, arch, packed, io)


def group_mobilenet_v3(outdir):
    build_mobilenet_v3(outdir, "mobilenet_v3_small")
    build_mobilenet_v3(outdir, "mobilenet_v3_large")


def group_densenet(outdir):
    torch.manual_seed(14)
    g = torch.Generator().manual_seed(15)
    m = torchvision.models.densenet121(weights=None)
    m.classifier = nn.Identity()
    randomise_bn_(m, g)
    packed = quantise_(m)
    x = torch.randn(2, 3, 64, 64, generator=g)
    f = m.features
    stages = [("stem", f[:4]), ("denseblock1", f.denseblock1), ("denseblock2", nn.Sequential(f.transition1, f.denseblock2)),
              ("denseblock3", nn.Sequential(f.transition2, f.denseblock3)),
              ("denseblock4", nn.Sequential(f.transition3, f.denseblock4)), ("norm5", nn.Sequential(f.norm5, nn.ReLU()))]
    io = conv_family_io(m, x, stages, lambda h: torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1),
                        ["features.conv0.weight", "features.denseblock2.denselayer1.conv1.weight", "features.norm5.bias"])
    save(outdir, "densenet121", packed, io)


GROUPS = {"lenet": group_lenet, "resnet_basic": group_resnet_basic, "resnet50": group_resnet50,
          "resnet_deep": group_resnet_deep, "vit_b_16": group_vit_b_16, "vit_small": group_vit_small,
          "convnext": group_convnext, "efficientnet": group_efficientnet, "mobilenet_v3": group_mobilenet_v3,
          "densenet": group_densenet}

if __name__ == "__main__":
    if len(sys.argv) < 3 or any(gname not in GROUPS for gname in sys.argv[2:]):
        sys.exit(f"usage: {sys.argv[0]} OUTDIR GROUP... (groups: {', '.join(GROUPS)})")
    for gname in sys.argv[2:]:
        GROUPS[gname](sys.argv[1])
