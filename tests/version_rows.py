"""A model version directory's item embeddings, row by row, for the e2e tests.

load(d) -> ({key: the row's raw float32 bytes}, manifest dict), keys in
item_keys.txt order, read straight from item_embeddings.safetensors so that
"bit-identical" compares bytes, not parsed floats.
"""
import json
import struct


def load(d):
    keys = open(d + "/item_keys.txt").read().split("\n")[:-1]
    b = open(d + "/item_embeddings.safetensors", "rb").read()
    (header_len,) = struct.unpack("<Q", b[:8])
    h = json.loads(b[8:8 + header_len])["embeddings"]
    rows, dim = h["shape"]
    assert rows == len(keys), (d, rows, len(keys))
    start, end = h["data_offsets"]
    data = b[8 + header_len + start:8 + header_len + end]
    row = dim * 4
    return ({k: data[i * row:(i + 1) * row] for i, k in enumerate(keys)},
            json.load(open(d + "/manifest.json")))
