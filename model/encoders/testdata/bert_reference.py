#!/usr/bin/python3
"""Independent reference for the C++ BERT backbone.

Writes into OUT_DIR:
  model.safetensors  random BERT weights under Hugging Face names (with the
                     "bert." prefix, old LayerNorm gamma/beta names for the
                     embeddings, a pooler tensor the C++ side must ignore)
  config.json        the HF config
  reference.safetensors  input_ids, attention_mask and the expected
                     per-layer CLS states [B, L+1, D] and the mean of the last
                     layer over the unmasked tokens [B, D] ("expected_mean"),
                     computed here in float64 with plain torch (no
                     transformers).
Usage: bert_reference.py OUT_DIR
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402

CONFIG = {"model_type": "bert", "vocab_size": 120, "hidden_size": 64,
          "num_hidden_layers": 3, "num_attention_heads": 4,
          "intermediate_size": 96, "max_position_embeddings": 16,
          "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}


def make_weights(rng, c):
    d, i = c["hidden_size"], c["intermediate_size"]
    w = {}

    def lin(name, n_in, n_out):
        w[name + ".weight"] = rng.normal(0, 0.15, (n_out, n_in))
        w[name + ".bias"] = rng.normal(0, 0.1, (n_out,))

    def ln(name, old=False):
        w[name + (".gamma" if old else ".weight")] = 1 + rng.normal(0, 0.2, (d,))
        w[name + (".beta" if old else ".bias")] = rng.normal(0, 0.2, (d,))

    w["bert.embeddings.word_embeddings.weight"] = rng.normal(0, 0.5, (c["vocab_size"], d))
    w["bert.embeddings.position_embeddings.weight"] = rng.normal(
        0, 0.5, (c["max_position_embeddings"], d))
    w["bert.embeddings.token_type_embeddings.weight"] = rng.normal(
        0, 0.5, (c["type_vocab_size"], d))
    ln("bert.embeddings.LayerNorm", old=True)
    for l in range(c["num_hidden_layers"]):
        p = "bert.encoder.layer.%d." % l
        lin(p + "attention.self.query", d, d)
        lin(p + "attention.self.key", d, d)
        lin(p + "attention.self.value", d, d)
        lin(p + "attention.output.dense", d, d)
        ln(p + "attention.output.LayerNorm")
        lin(p + "intermediate.dense", d, i)
        lin(p + "output.dense", i, d)
        ln(p + "output.LayerNorm")
    lin("bert.pooler.dense", d, d)
    out = {k: v.astype(np.float32) for k, v in w.items()}
    # One tensor stored as F16, as in half-precision checkpoints: the C++
    # loader converts it; the reference uses the same rounded values.
    out["bert.embeddings.word_embeddings.weight"] = out[
        "bert.embeddings.word_embeddings.weight"].astype(np.float16)
    return out


def forward(w, c, ids, mask):
    t = {k: torch.from_numpy(v.astype(np.float64)) for k, v in w.items()}
    eps = c["layer_norm_eps"]
    d, h = c["hidden_size"], c["num_attention_heads"]
    dh = d // h
    ids = torch.from_numpy(ids)
    m = torch.from_numpy(mask).double()
    B, T = ids.shape

    def lin(x, name):
        return x @ t[name + ".weight"].T + t[name + ".bias"]

    def ln(x, wn, bn):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + eps) * t[wn] + t[bn]

    e = "bert.embeddings."
    x = (t[e + "word_embeddings.weight"][ids]
         + t[e + "position_embeddings.weight"][torch.arange(T)][None]
         + t[e + "token_type_embeddings.weight"][0][None, None])
    x = ln(x, e + "LayerNorm.gamma", e + "LayerNorm.beta")
    states = [x[:, 0]]
    bias = (1.0 - m)[:, None, None, :] * -10000.0
    for l in range(c["num_hidden_layers"]):
        p = "bert.encoder.layer.%d." % l

        def split(y):
            return y.view(B, T, h, dh).permute(0, 2, 1, 3)

        q = split(lin(x, p + "attention.self.query"))
        k = split(lin(x, p + "attention.self.key"))
        v = split(lin(x, p + "attention.self.value"))
        s = q @ k.transpose(-1, -2) / math.sqrt(dh) + bias
        ctx = (torch.softmax(s, -1) @ v).permute(0, 2, 1, 3).reshape(B, T, d)
        a = ln(lin(ctx, p + "attention.output.dense") + x,
               p + "attention.output.LayerNorm.weight",
               p + "attention.output.LayerNorm.bias")
        inter = lin(a, p + "intermediate.dense")
        gelu = 0.5 * inter * (1.0 + torch.erf(inter / math.sqrt(2.0)))
        x = ln(lin(gelu, p + "output.dense") + a,
               p + "output.LayerNorm.weight", p + "output.LayerNorm.bias")
        states.append(x[:, 0])
    # Mean pooling: the last layer averaged over the unmasked tokens.
    mean = (x * m[:, :, None]).sum(1) / m.sum(1)[:, None]
    return torch.stack(states, 1).numpy(), mean.numpy()


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(1234)
    c = CONFIG
    w = make_weights(rng, c)
    lengths = [9, 5, 2, 9]
    T = max(lengths)
    ids = np.zeros((len(lengths), T), dtype=np.int64)
    mask = np.zeros((len(lengths), T), dtype=np.int64)
    for b, n in enumerate(lengths):
        ids[b, :n] = rng.integers(4, c["vocab_size"], n)
        ids[b, 0], ids[b, n - 1] = 2, 3
        ids[b, n:] = rng.integers(4, c["vocab_size"], T - n)  # junk under the mask
        mask[b, :n] = 1
    expected, expected_mean = forward(w, c, ids, mask)
    safetensors_np.save(os.path.join(out, "model.safetensors"), w,
                        {"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(c, f)
    safetensors_np.save(os.path.join(out, "reference.safetensors"),
                        {"input_ids": ids, "attention_mask": mask,
                         "expected": expected.astype(np.float32),
                         "expected_mean": expected_mean.astype(np.float32)})


if __name__ == "__main__":
    main()
