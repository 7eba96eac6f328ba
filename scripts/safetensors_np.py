#!/usr/bin/python3
"""A hand-written .safetensors reader/writer on numpy only (the `safetensors` package is not needed).

Format: u64 little-endian header length N, N bytes of JSON
  {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
then the data section (offsets relative to its start), little-endian, C order.

numpy has no bfloat16: BF16 tensors are handled as uint16 bit patterns (`Raw16`), converted to
float32 by `bf16_to_f32`.

CLI (used by shiftlab's tests):
  safetensors_np.py dump FILE     JSON {name: {dtype, shape, values (flat)}, "__metadata__": {...}}
"""
import json
import struct
import sys

import numpy as np

DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}


class BF16:
    """A bfloat16 array held as its uint16 bit patterns."""

    def __init__(self, bits):
        self.bits = np.asarray(bits, dtype="<u2", order="C")

    @staticmethod
    def from_f32(x):
        x = np.asarray(x, dtype="<f4", order="C")
        return BF16((x.view("<u4") >> 16).astype("<u2"))  # truncation: exact for bf16-representable values

    def to_f32(self):
        return (self.bits.astype("<u4") << 16).view("<f4")


def _code(arr):
    if isinstance(arr, BF16):
        return "BF16"
    key = (np.dtype(arr.dtype).kind, np.dtype(arr.dtype).itemsize)
    codes = {("f", 8): "F64", ("f", 4): "F32", ("f", 2): "F16", ("i", 8): "I64", ("i", 4): "I32",
             ("i", 2): "I16", ("i", 1): "I8", ("u", 1): "U8", ("b", 1): "BOOL"}
    if key not in codes:
        raise ValueError(f"dtype {arr.dtype} cannot be stored in safetensors")
    return codes[key]


def dumps(tensors, metadata=None, order=None):
    """tensors: {name: np.ndarray | BF16}. order: names in data-section order (default sorted)."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name in order or sorted(tensors):
        arr = tensors[name]
        code = _code(arr)
        data = arr.bits if isinstance(arr, BF16) else np.asarray(arr, order="C").astype(DTYPES[code], copy=False)
        raw = data.tobytes(order="C")
        header[name] = {"dtype": code, "shape": list(data.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def save(path, tensors, metadata=None, order=None):
    with open(path, "wb") as f:
        f.write(dumps(tensors, metadata, order))


def load(path):
    """Returns ({name: np.ndarray | BF16}, metadata)."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    if n > len(buf) - 8:
        raise ValueError(f"{path}: header length {n} beyond the file")
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = memoryview(buf)[8 + n:]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        dt = DTYPES[e["dtype"]]
        arr = np.frombuffer(data[b:end], dtype=dt).reshape(e["shape"]).copy()
        out[name] = BF16(arr) if e["dtype"] == "BF16" else arr
    return out, meta


def _dump(path):
    tensors, meta = load(path)
    out = {"__metadata__": meta}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    for name, arr in tensors.items():
        vals = arr.to_f32() if isinstance(arr, BF16) else arr
        if vals.dtype == np.bool_:
            vals = vals.astype(np.int64)
        flat = vals.reshape(-1)
        out[name] = {"dtype": header[name]["dtype"], "shape": header[name]["shape"],
                     "values": [v.item() for v in flat]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "dump":
        _dump(sys.argv[2])
    else:
        sys.exit(__doc__)
