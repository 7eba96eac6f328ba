#!/usr/bin/python3
"""Independent reference for the shift suites (src/data/suites.cpp), used by tests/test_data_suites.cpp.

    suites_reference.py check ROOT NAME K     -> one JSON line on stdout

Reads ROOT/NAME (the suite) and its base set ROOT/<base> with numpy only (plus PIL for the
rotation, which is what DomainBed applies), checks every file's SHA-256 against the manifest and
that numpy loads it with the counts the manifest gives, then re-derives the first K items of every
domain split from the base images with its own implementation of each transformation (numpy; the
seeded draws by a pure-Python xoshiro256** / splitmix64) and reports the differences.
"""
import hashlib
import json
import math
import os
import sys

import numpy as np

M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def mix_seed(a, b, c=0, d=0):
    s, h = splitmix64(a)
    s, h = splitmix64(h ^ b)
    s, h = splitmix64(h ^ c)
    s, h = splitmix64(h ^ d)
    return h


def fnv1a(text):
    h = 1469598103934665603
    for ch in text.encode():
        h = ((h ^ ch) * 1099511628211) & M64
    return h


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Xoshiro:
    def __init__(self, seed):
        self.s = []
        x = seed
        for _ in range(4):
            x, v = splitmix64(x)
            self.s.append(v)

    def next(self):
        s = self.s
        r = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return r

    def uniform(self):
        return (self.next() >> 11) * (2.0 ** -53)

    def normal(self):
        u1 = self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


def quantize(x):
    return np.floor(np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def gauss(x, sigma):
    r = int(math.floor(4.0 * sigma + 0.5))
    k = [math.exp(-0.5 * (i / sigma) * (i / sigma)) for i in range(-r, r + 1)]
    total = 0.0
    for v in k:
        total += v
    k = [v / total for v in k]
    h, w = x.shape
    p = np.pad(x, ((0, 0), (r, r)), mode="edge")
    tmp = np.zeros_like(x)
    for i in range(2 * r + 1):
        tmp = tmp + k[i] * p[:, i:i + w]
    p = np.pad(tmp, ((r, r), (0, 0)), mode="edge")
    out = np.zeros_like(x)
    for i in range(2 * r + 1):
        out = out + k[i] * p[i:i + h, :]
    return out


CORRUPTIONS = {
    "gaussian_noise": [0.08, 0.12, 0.18, 0.26, 0.38],
    "impulse_noise": [0.03, 0.06, 0.09, 0.17, 0.27],
    "gaussian_blur": [0.6, 0.9, 1.2, 1.6, 2.0],
    "contrast": [0.4, 0.3, 0.2, 0.1, 0.05],
    "inversion": [0.2, 0.4, 0.6, 0.8, 1.0],
    "elastic": [10, 16, 22, 28, 34],
}


def corrupt(name, sev, img, seed):
    p = CORRUPTIONS[name][sev - 1]
    h, w = img.shape
    rng = Xoshiro(seed)
    x = img.astype(np.float64) / 255.0
    if name == "gaussian_noise":
        z = np.array([rng.normal() for _ in range(h * w)]).reshape(h, w)
        x = x + p * z
    elif name == "impulse_noise":
        flat = x.reshape(-1).copy()
        for i in range(h * w):
            if rng.uniform() < p:
                flat[i] = 0.0 if rng.uniform() < 0.5 else 1.0
        x = flat.reshape(h, w)
    elif name == "gaussian_blur":
        x = gauss(x, p)
    elif name == "contrast":
        m = 0.0
        for v in x.reshape(-1):
            m += float(v)
        m /= h * w
        x = (x - m) * p + m
    elif name == "inversion":
        wb = int(math.floor(p * w + 0.5))
        x0 = int(math.floor(rng.uniform() * (w - wb + 1)))
        out = img.copy()
        out[:, x0:x0 + wb] = 255 - img[:, x0:x0 + wb]
        return out
    elif name == "elastic":
        fx = np.array([2.0 * rng.uniform() - 1.0 for _ in range(h * w)]).reshape(h, w)
        fy = np.array([2.0 * rng.uniform() - 1.0 for _ in range(h * w)]).reshape(h, w)
        fx = gauss(fx, 4.0)
        fy = gauss(fy, 4.0)
        pad = np.zeros((h + 4, w + 4))
        pad[2:h + 2, 2:w + 2] = x
        out = np.zeros_like(x)
        for yy in range(h):
            for xx in range(w):
                ys = yy + p * fy[yy, xx]
                xs = xx + p * fx[yy, xx]
                y0, x0 = math.floor(ys), math.floor(xs)
                dy, dx = ys - y0, xs - x0

                def at(a, b):
                    return x[a, b] if 0 <= a < h and 0 <= b < w else 0.0

                top = at(y0, x0) * (1 - dx) + at(y0, x0 + 1) * dx
                bot = at(y0 + 1, x0) * (1 - dx) + at(y0 + 1, x0 + 1) * dx
                out[yy, xx] = top * (1 - dy) + bot * dy
        x = out
    return quantize(x)


def sketch(img):
    g = gauss(img.astype(np.float64) / 255.0, 0.7)
    h, w = g.shape
    P = np.pad(g, 1, mode="edge")
    gx = (P[0:h, 2:] + 2 * P[1:h + 1, 2:] + P[2:, 2:]) - (P[0:h, 0:w] + 2 * P[1:h + 1, 0:w] + P[2:, 0:w])
    gy = (P[2:, 0:w] + 2 * P[2:, 1:w + 1] + P[2:, 2:]) - (P[0:h, 0:w] + 2 * P[0:h, 1:w + 1] + P[0:h, 2:])
    mag = np.sqrt(gx * gx + gy * gy)
    mx = mag.max()
    if mx < 1e-12:
        return np.full(img.shape, 255, np.uint8)
    e = mag / mx
    s = np.clip((e - 0.1) / (0.5 - 0.1), 0.0, 1.0)
    return quantize(1.0 - s)


def rotate_pil(img, angle):
    from PIL import Image
    bilinear = getattr(Image, "Resampling", Image).BILINEAR
    return np.array(Image.fromarray(img).rotate(angle, bilinear, fillcolor=0))


def load_split(d, js):
    return (np.load(os.path.join(d, js["images"])), np.load(os.path.join(d, js["labels"])),
            np.load(os.path.join(d, js["index"])))


def check_files(d, m, out):
    bad = []
    for f, sha in m["files"].items():
        with open(os.path.join(d, f), "rb") as fh:
            if hashlib.sha256(fh.read()).hexdigest() != sha:
                bad.append(f)
    out["sha_bad"] = bad
    out["files"] = len(m["files"])
    wrong = []
    for key, js in m["splits"].items():
        im, lb, ix = load_split(d, js)
        c = m["channels"]
        want = (js["count"], c, *m["image_shape"]) if c > 1 else (js["count"], *m["image_shape"])
        if im.shape != tuple(want) or im.dtype != np.uint8 or lb.shape != (js["count"],) or lb.dtype != np.int64:
            wrong.append(key)
        if list(np.bincount(lb, minlength=m["num_classes"])) != js["per_class"]:
            wrong.append(key + " per_class")
    out["shape_bad"] = wrong


def base_source_order(bd, bm):
    """Base images and labels by source position (index arrays)."""
    imgs, labs = {}, {}
    for s in ("train", "val", "test"):
        im, lb, ix = load_split(bd, bm["splits"][s])
        for k in range(len(ix)):
            imgs[int(ix[k])] = im[k]
            labs[int(ix[k])] = int(lb[k])
    return imgs, labs


def diff_stats(out, key, a, b):
    d = np.abs(a.astype(np.int64) - b.astype(np.int64))
    out["max_diff"] = max(out.get("max_diff", 0), int(d.max()) if d.size else 0)
    out["pixels"] = out.get("pixels", 0) + int(d.size)
    out["pixels_differing"] = out.get("pixels_differing", 0) + int((d > 0).sum())
    if d.size and d.max() > 0:
        out.setdefault("differing_parts", []).append(key)


def main():
    if len(sys.argv) != 5 or sys.argv[1] != "check":
        sys.exit(__doc__)
    root, name, K = sys.argv[2], sys.argv[3], int(sys.argv[4])
    d = os.path.join(root, name)
    m = json.load(open(os.path.join(d, "manifest.json")))
    base = m["derivation"]["base"]
    bd = os.path.join(root, base)
    bm = json.load(open(os.path.join(bd, "manifest.json")))
    seed = m["derivation"]["seed"]
    out = {"name": name}
    check_files(d, m, out)
    kind = m.get("suite", {}).get("kind", "sketch")
    if kind == "rotated-mnist":
        imgs, labs = base_source_order(bd, bm)
        seen = []
        for key, js in m["splits"].items():
            im, lb, ix = load_split(d, js)
            seen += [int(v) for v in ix]
            for k in range(min(K, len(ix))):
                diff_stats(out, key, im[k], rotate_pil(imgs[int(ix[k])], js["params"]["angle"]))
            out["labels_wrong"] = out.get("labels_wrong", 0) + sum(int(lb[k]) != labs[int(ix[k])] for k in range(len(ix)))
        out["items"] = len(seen)
        out["distinct_items"] = len(set(seen))
        out["base_items"] = len(imgs)
    elif kind == "colored-mnist":
        imgs, labs = base_source_order(bd, bm)
        rates = {}
        bad_images = 0
        for dom in m["suite"]["domains"]:
            n = noise = flip = 0
            for s in ("train", "val", "test"):
                im, lb, ix = load_split(d, m["splits"][dom + "/" + s])
                for k in range(len(ix)):
                    digit = imgs[int(ix[k])]
                    colour = 0 if im[k, 0].any() else 1
                    if not np.array_equal(im[k, colour], digit) or im[k, 1 - colour].any():
                        bad_images += 1
                    y = int(lb[k])
                    noise += y != int(labs[int(ix[k])] < 5)
                    flip += colour != y
                    n += 1
            rates[dom] = {"n": n, "label_noise": noise / n, "colour_flip": flip / n}
        out["rates"] = rates
        out["bad_images"] = bad_images
    elif kind == "corruptions":
        bim, blb, bix = load_split(bd, bm["splits"]["test"])
        mono = {}
        for dom in m["suite"]["domains"]:
            js = m["splits"][dom + "/test"]
            im, lb, ix = load_split(d, js)
            name_, sev = dom.rsplit("-", 1)
            for k in range(min(K, len(ix))):
                ref = corrupt(name_, int(sev), bim[k], mix_seed(seed, fnv1a(name), fnv1a(dom), k))
                diff_stats(out, dom, im[k], ref)
            out["labels_wrong"] = out.get("labels_wrong", 0) + int((lb != blb[:len(lb)]).sum())
            mono.setdefault(name_, []).append(float(np.abs(im.astype(np.float64) - bim[:len(im)]).mean()))
        out["mean_abs_change"] = mono
    else:  # fashion-sketch
        for s in ("train", "val", "test"):
            im, lb, ix = load_split(d, m["splits"][s])
            bim, blb, bix = load_split(bd, bm["splits"][s])
            for k in range(min(K, len(ix))):
                diff_stats(out, s, im[k], sketch(bim[k]))
            out["labels_wrong"] = out.get("labels_wrong", 0) + int((lb != blb[:len(lb)]).sum())
            out["index_wrong"] = out.get("index_wrong", 0) + int((ix != bix[:len(ix)]).sum())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
