#!/usr/bin/python3
"""Backbones for collection_encoder_test, made at test time (nothing binary
is committed), with the embeddings the endpoint must produce computed here
independently (float64 torch/numpy, no C++ code involved).

OUT_DIR/bert/{model.safetensors,config.json,vocab.txt}
    random-weight BERT (model/encoders/testdata/bert_reference.py's weights
    and float64 forward pass); vocab [PAD] [UNK] [CLS] [SEP] w4 .. w119.
OUT_DIR/ts_text.pt   text module returning a tuple of [B, T, 6] states
                     (model/encoders/testdata/make_torchscript.py's Text)
OUT_DIR/ts_stacked.pt text module returning one Tensor [B, 3, 6] (per-state
                     vectors: CLS pooling only)
OUT_DIR/ts_image.pt  image module returning [B, 3, 5] (make_torchscript's
                     Image), 8x8 input
OUT_DIR/ts_nan.pt    image module whose output is NaN
OUT_DIR/vocab.txt    the TorchScript text modules' vocabulary
OUT_DIR/expected.safetensors
    bert_cls, bert_mean [2, 64]: L2-normalised last-layer CLS / masked mean
        for BERT_TEXTS;
    ts_cls, ts_mean [2, 6]: the same for TS_TEXTS through ts_text.pt;
    ts_image [1, 5]: the L2-normalised last state of ts_image.pt for the
        8x8 gray ramp below (gray replicated to RGB, mean/std below).
Usage: make_encoder_modules.py OUT_DIR
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../../model/encoders/testdata"))
import bert_reference  # noqa: E402
import make_torchscript  # noqa: E402
import safetensors_np  # noqa: E402

BERT_TEXTS = ["w5 w17 w33 w8 w90", "W40 w41"]
TS_TEXTS = ["b c", "d a d"]  # ids: [CLS]=2 .. a=4 b=5 c=6 d=7
IMAGE_MEAN = [0.4, 0.5, 0.6]
IMAGE_STD = [0.2, 0.25, 0.3]


def l2(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def gray_ramp():
    # The C++ test's 8x8 image: pixel (y, x) = ((y * 8 + x) * 3 % 256) / 255.
    return np.array([[((y * 8 + x) * 3) % 256 for x in range(8)] for y in range(8)],
                    dtype=np.float64)


class Stacked(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(16, 6)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.emb(input_ids)[:, 0]
        return torch.stack([x, torch.tanh(x), torch.sin(x)], 1)


class Nan(torch.nn.Module):
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = pixel_values.mean(dim=(2, 3))
        return torch.stack([x, x * float("nan")], 1)


def main():
    out = sys.argv[1]
    # BERT model directory.
    rng = np.random.default_rng(99)
    c = bert_reference.CONFIG
    w = bert_reference.make_weights(rng, c)
    bdir = os.path.join(out, "bert")
    os.makedirs(bdir, exist_ok=True)
    safetensors_np.save(os.path.join(bdir, "model.safetensors"), w, {"format": "pt"})
    with open(os.path.join(bdir, "config.json"), "w") as f:
        import json
        json.dump(c, f)
    with open(os.path.join(bdir, "vocab.txt"), "w") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] +
                          ["w%d" % i for i in range(4, c["vocab_size"])]) + "\n")
    bert_cls, bert_mean = [], []
    for text in BERT_TEXTS:
        ids = [2] + [int(t[1:]) for t in text.lower().split()] + [3]
        ids = np.array([ids], dtype=np.int64)
        states, mean = bert_reference.forward(w, c, ids, np.ones_like(ids))
        bert_cls.append(l2(states[0, -1]))
        bert_mean.append(l2(mean[0]))

    # TorchScript modules.
    torch.manual_seed(0)
    text = torch.jit.script(make_torchscript.Text().eval())
    image = torch.jit.script(make_torchscript.Image().eval())
    text.save(os.path.join(out, "ts_text.pt"))
    image.save(os.path.join(out, "ts_image.pt"))
    torch.jit.script(Stacked().eval()).save(os.path.join(out, "ts_stacked.pt"))
    torch.jit.script(Nan().eval()).save(os.path.join(out, "ts_nan.pt"))
    with open(os.path.join(out, "vocab.txt"), "w") as f:
        f.write("[PAD]\n[UNK]\n[CLS]\n[SEP]\na\nb\nc\nd\n")
    vocab = {"a": 4, "b": 5, "c": 6, "d": 7}
    ts_cls, ts_mean = [], []
    with torch.no_grad():
        for t in TS_TEXTS:
            ids = torch.tensor([[2] + [vocab[x] for x in t.split()] + [3]])
            hs = text(ids, torch.ones_like(ids))
            last = hs[-1].double()[0]
            ts_cls.append(l2(last[0].numpy()))
            ts_mean.append(l2(last.mean(0).numpy()))
        g = gray_ramp() / 255.0
        rgb = np.stack([g, g, g], 0)  # CHW
        pix = (rgb - np.array(IMAGE_MEAN)[:, None, None]) / np.array(IMAGE_STD)[:, None, None]
        states = image(torch.from_numpy(pix[None].astype(np.float32)))
        ts_image = l2(states[0, -1].double().numpy())[None]
    safetensors_np.save(os.path.join(out, "expected.safetensors"), {
        "bert_cls": np.array(bert_cls, dtype=np.float32),
        "bert_mean": np.array(bert_mean, dtype=np.float32),
        "ts_cls": np.array(ts_cls, dtype=np.float32),
        "ts_mean": np.array(ts_mean, dtype=np.float32),
        "ts_image": ts_image.astype(np.float32)})


if __name__ == "__main__":
    main()
