#!/usr/bin/python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/ (small valid files of
each kind plus a few near-misses), deterministically. Needs Debian's python3 with numpy, PIL,
h5py and torch (for the .pth seeds). Re-run after changing it and commit the files; crashers
found by fuzzing are added by hand as corpus/<target>/regression-*.

  /usr/bin/python3 fuzz/make_corpus.py
"""
import collections
import io
import json
import os
import struct
import sys

import h5py
import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None, pad=True):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (code, arr) in tensors.items():
        b = arr.tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def make_safetensors():
    k = np.arange(6).reshape(2, 3)
    put("safetensors", "two_tensors", safetensors({"w": ("F32", (1.5 * k - 4).astype("<f4")),
                                                   "b": ("I64", np.array([1, -2], "<i8"))}, {"framework": "pt"}))
    put("safetensors", "every_small_dtype", safetensors({
        "f16": ("F16", np.array([1, 2], "<f2")), "bf16": ("BF16", np.array([0x3f80], "<u2")),
        "u8": ("U8", np.array([7], "u1")), "b": ("BOOL", np.array([True, False])),
        "i8": ("I8", np.array([-1], "i1")), "d": ("F64", np.array([0.5], "<f8")),
        "empty": ("F32", np.zeros((0, 3), "<f4")), "scalar": ("F32", np.array(7.25, "<f4"))}))
    put("safetensors", "header_len_beyond_file", struct.pack("<Q", 1000) + b'{"a":{}}')
    put("safetensors", "overlap", safetensors({"a": ("F32", np.zeros(2, "<f4"))})[:8] +
        b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}')


def make_pth():
    import torch
    sd = collections.OrderedDict()
    sd["conv.weight"] = torch.arange(12, dtype=torch.float32).reshape(2, 1, 2, 3)
    sd["conv.bias"] = torch.tensor([0.5, -1.0])
    sd["bn.num_batches_tracked"] = torch.tensor(3)
    sd._metadata = collections.OrderedDict({"": {"version": 1}, "bn": {"version": 2}})
    for name, obj, zipped in [("ordered_zip.pth", sd, True), ("ordered_legacy.pth", sd, False),
                              ("nested_zip.pth", {"state_dict": {"a": torch.ones(3, dtype=torch.float16)},
                                                  "epoch": 3}, True),
                              ("view_legacy.pth", {"v": torch.arange(8, dtype=torch.int64)[2:6],
                                                   "t": torch.arange(6.0).reshape(2, 3).t()}, False)]:
        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=zipped)
        put("pth", name, buf.getvalue())


def make_ini():
    put("ini", "schema_keys.ini", b"method = dann\n# comment\n[train]\nflag = yes\nsteps = 1e4\nany = -7\n"
        b"[optim]\nlr = 1e-3\nany = -2.5\n[model]\nweights = w.safetensors\ntaps = layer3, pooled\n"
        b"[data.source]\nlayout = nchw\ntransform = resize(32), center_crop(28), normalize(0.5, 0.5)\n")
    put("ini", "unknown_key.ini", b"[train]\nlrr = 0.1\n")
    put("ini", "ill_typed.ini", b"[train]\nsteps = many\n")
    cfg = os.path.join(os.path.dirname(ROOT), "..", "configs", "digits", "mnist_to_uci.ini")
    with open(cfg, "rb") as f:
        put("ini", "mnist_to_uci.ini", f.read())


def make_image():
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8), "RGB")
    grey = Image.fromarray(rng.integers(0, 256, (9, 7), dtype=np.uint8), "L")

    def save(img, fmt, **kw):
        b = io.BytesIO()
        img.save(b, fmt, **kw)
        return b.getvalue()

    put("image", "rgb.jpg", save(rgb, "JPEG", quality=80))
    put("image", "grey_progressive.jpg", save(grey, "JPEG", progressive=True))
    put("image", "cmyk.jpg", save(rgb.convert("CMYK"), "JPEG"))
    put("image", "rgb.png", save(rgb, "PNG"))
    put("image", "rgba_interlaced.png", save(rgb.convert("RGBA"), "PNG", interlace=1))
    put("image", "palette.png", save(rgb.convert("P"), "PNG"))
    put("image", "grey16.png", save(Image.fromarray((np.arange(20, dtype=np.uint16) * 3000).reshape(4, 5)), "PNG"))
    put("image", "bilevel.png", save(grey.convert("1"), "PNG"))
    put("image", "rgb.tif", save(rgb, "TIFF"))
    put("image", "grey_lzw.tif", save(grey, "TIFF", compression="tiff_lzw"))
    put("image", "float32.tif", save(Image.fromarray(rng.random((5, 6), dtype=np.float32)), "TIFF"))
    put("image", "bilevel.tif", save(grey.convert("1"), "TIFF"))
    # a multi-band 16-bit planar TIFF, written by hand (PIL cannot): 3×4 pixels, 5 bands
    put("image", "multiband16_planar.tif", tiff_planar16(3, 4, 5))


def tiff_planar16(h, w, bands):
    data = np.arange(h * w * bands, dtype="<u2").reshape(bands, h, w) * 1000
    strips = [data[b].tobytes() for b in range(bands)]
    entries = []
    first_strip = 8
    offsets = []
    pos = first_strip
    for s in strips:
        offsets.append(pos)
        pos += len(s)
    extra = pos  # arrays that do not fit an IFD entry
    arrays = b""

    def arr(values, fmt):
        nonlocal arrays
        off = extra + len(arrays)
        arrays += struct.pack("<" + fmt * len(values), *values)
        return off

    bps_off = arr([16] * bands, "H")
    off_off = arr(offsets, "I")
    cnt_off = arr([len(s) for s in strips], "I")
    ifd_off = extra + len(arrays)
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, bands, bps_off), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, bands, off_off), (277, 3, 1, bands), (278, 3, 1, h), (279, 4, bands, cnt_off),
               (284, 3, 1, 2)]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHII", tag, typ, count, value)
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", ifd_off) + b"".join(strips) + arrays + ifd


def make_npy():
    def npy(arr, version=(1, 0)):
        b = io.BytesIO()
        np.lib.format.write_array(b, arr, version=version)
        return b.getvalue()

    put("npy", "u1_nhw.npy", npy(np.arange(24, dtype=np.uint8).reshape(2, 3, 4)))
    put("npy", "f4_v2.npy", npy(np.linspace(0, 1, 6, dtype=np.float32).reshape(1, 2, 3), version=(2, 0)))
    put("npy", "i8_labels.npy", npy(np.array([0, 1, 2, 1], dtype=np.int64)))
    put("npy", "u2_nchw.npy", npy(np.arange(16, dtype=np.uint16).reshape(1, 1, 4, 4)))
    put("npy", "empty.npy", npy(np.zeros((0, 5), dtype=np.float64)))
    put("npy", "scalar_bool.npy", npy(np.array(True)))


def make_list_file():
    put("list_file", "office.txt", b"amazon/images/back_pack/frame_0001.jpg 0\n"
        b"amazon/images/bike/frame_0001.jpg 1\n# a comment\n\n/abs/path/x.png\t30\n")
    put("list_file", "unlabelled_crlf.txt", b"a b c.jpg\r\nd.tif\r\n  e.png   \r\n")
    put("list_file", "negative_label.txt", b"x.jpg -1\n")


def make_h5_cache():
    def cache(dtype, rows, done, dim, libver=None):
        b = io.BytesIO()
        kw = {"libver": libver} if libver else {}
        with h5py.File(b, "w", **kw) as f:
            f.attrs["format"] = "shiftlab-features"
            f.attrs["format_version"] = np.int64(1)
            f.attrs["backbone"] = "lenet"
            f.attrs["weights_sha256"] = "0" * 64
            g = f.create_group("source/train")
            g.attrs["num_classes"] = np.int64(3)
            g.attrs["rows"] = np.int64(rows)
            g.create_dataset("labels", data=np.arange(rows, dtype=np.int64) % 3)
            g.create_dataset("index", data=np.arange(rows, dtype=np.int64))
            t = g.create_group("pooled")
            d = t.create_dataset("features", data=np.arange(rows * dim, dtype=dtype).reshape(rows, dim),
                                 chunks=(min(rows, 2), dim))
            d.attrs["rows_done"] = np.int64(done)
            d.attrs["tap"] = "pooled"
        return b.getvalue()

    put("h5_cache", "f32_complete.h5", cache(np.float32, 3, 3, 4, libver="latest"))
    put("h5_cache", "f16_partial.h5", cache(np.float16, 4, 2, 2, libver="latest"))
    put("h5_cache", "f32_default_libver.h5", cache(np.float32, 2, 2, 2))


def main():
    for f in (make_safetensors, make_pth, make_ini, make_image, make_npy, make_list_file, make_h5_cache):
        f()
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(ROOT) for n in ns)
    print(f"corpus: {total} bytes under {ROOT}")


if __name__ == "__main__":
    sys.exit(main())
