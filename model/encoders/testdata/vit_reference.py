#!/usr/bin/python3
"""Independent reference for the C++ ViT backbone (HF ViTModel layout).

Writes into OUT_DIR: model.safetensors (random weights, HF names with the
"vit." prefix plus an unused final layernorm), config.json, and
reference.safetensors with pixel_values [B, 3, S, S] and the expected
per-layer CLS states [B, L+1, D] (float64 plain torch, no transformers).
Usage: vit_reference.py OUT_DIR
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402

CONFIG = {"model_type": "vit", "hidden_size": 48, "num_hidden_layers": 3,
          "num_attention_heads": 3, "intermediate_size": 80, "image_size": 32,
          "patch_size": 8, "num_channels": 3, "layer_norm_eps": 1e-12,
          "hidden_act": "gelu", "image_mean": [0.485, 0.456, 0.406],
          "image_std": [0.229, 0.224, 0.225]}


def make_weights(rng, c):
    d, i, p, ch = (c["hidden_size"], c["intermediate_size"], c["patch_size"],
                   c["num_channels"])
    n = (c["image_size"] // p) ** 2
    w = {}

    def lin(name, n_in, n_out):
        w[name + ".weight"] = rng.normal(0, 0.15, (n_out, n_in))
        w[name + ".bias"] = rng.normal(0, 0.1, (n_out,))

    def ln(name):
        w[name + ".weight"] = 1 + rng.normal(0, 0.2, (d,))
        w[name + ".bias"] = rng.normal(0, 0.2, (d,))

    w["vit.embeddings.cls_token"] = rng.normal(0, 0.5, (1, 1, d))
    w["vit.embeddings.position_embeddings"] = rng.normal(0, 0.5, (1, n + 1, d))
    w["vit.embeddings.patch_embeddings.projection.weight"] = rng.normal(
        0, 0.1, (d, ch, p, p))
    w["vit.embeddings.patch_embeddings.projection.bias"] = rng.normal(0, 0.1, (d,))
    for l in range(c["num_hidden_layers"]):
        q = "vit.encoder.layer.%d." % l
        ln(q + "layernorm_before")
        lin(q + "attention.attention.query", d, d)
        lin(q + "attention.attention.key", d, d)
        lin(q + "attention.attention.value", d, d)
        lin(q + "attention.output.dense", d, d)
        ln(q + "layernorm_after")
        lin(q + "intermediate.dense", d, i)
        lin(q + "output.dense", i, d)
    ln("vit.layernorm")
    return {k: v.astype(np.float32) for k, v in w.items()}


def forward(w, c, pixels):
    t = {k: torch.from_numpy(v.astype(np.float64)) for k, v in w.items()}
    eps, d, h = c["layer_norm_eps"], c["hidden_size"], c["num_attention_heads"]
    dh = d // h
    x = torch.nn.functional.conv2d(
        torch.from_numpy(pixels.astype(np.float64)),
        t["vit.embeddings.patch_embeddings.projection.weight"],
        t["vit.embeddings.patch_embeddings.projection.bias"],
        stride=c["patch_size"])
    B = x.shape[0]
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([t["vit.embeddings.cls_token"].expand(B, 1, d), x], 1)
    x = x + t["vit.embeddings.position_embeddings"]
    T = x.shape[1]

    def lin(y, name):
        return y @ t[name + ".weight"].T + t[name + ".bias"]

    def ln(y, name):
        mu = y.mean(-1, keepdim=True)
        var = ((y - mu) ** 2).mean(-1, keepdim=True)
        return (y - mu) / torch.sqrt(var + eps) * t[name + ".weight"] + t[name + ".bias"]

    states = [x[:, 0]]
    for l in range(c["num_hidden_layers"]):
        q = "vit.encoder.layer.%d." % l
        n = ln(x, q + "layernorm_before")

        def split(y):
            return y.view(B, T, h, dh).permute(0, 2, 1, 3)

        qq = split(lin(n, q + "attention.attention.query"))
        kk = split(lin(n, q + "attention.attention.key"))
        vv = split(lin(n, q + "attention.attention.value"))
        a = torch.softmax(qq @ kk.transpose(-1, -2) / math.sqrt(dh), -1) @ vv
        a = a.permute(0, 2, 1, 3).reshape(B, T, d)
        x = lin(a, q + "attention.output.dense") + x
        inter = lin(ln(x, q + "layernorm_after"), q + "intermediate.dense")
        gelu = 0.5 * inter * (1.0 + torch.erf(inter / math.sqrt(2.0)))
        x = lin(gelu, q + "output.dense") + x
        states.append(x[:, 0])
    return torch.stack(states, 1).numpy()


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(4321)
    c = CONFIG
    w = make_weights(rng, c)
    s = c["image_size"]
    pixels = rng.normal(0, 1, (3, 3, s, s)).astype(np.float32)
    expected = forward(w, c, pixels)
    safetensors_np.save(os.path.join(out, "model.safetensors"), w, {"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(c, f)
    safetensors_np.save(os.path.join(out, "reference.safetensors"),
                        {"pixel_values": pixels,
                         "expected": expected.astype(np.float32)})


if __name__ == "__main__":
    main()
