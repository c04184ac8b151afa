#!/usr/bin/python3
"""Builds two small TorchScript backbones with torch 1.13 and their expected
outputs, for torchscript_encoder_test.

OUT_DIR/text.pt:  forward(input_ids, attention_mask) -> tuple of [B, T, D]
                  hidden states (HF-style), masked-mean mixing so padding
                  matters unless the mask is honoured.
OUT_DIR/image.pt: forward(pixel_values) -> Tensor [B, 3, D].
OUT_DIR/expected.safetensors: text_expected [2, 3, D] for ids/mask below,
                  text_mean_expected [2, D] (mean of the last state over
                  the unmasked tokens),
                  image_expected [1, 3, D] for the 8x8 test pattern below.
Usage: make_torchscript.py OUT_DIR
"""
import os
import sys
from typing import List, Tuple

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402


class Text(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(16, 6)
        self.layers = torch.nn.ModuleList([torch.nn.Linear(6, 6) for _ in range(2)])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = attention_mask.unsqueeze(-1).float()
        x = self.emb(input_ids)
        states: List[torch.Tensor] = [x]
        for layer in self.layers:
            pooled = (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)
            x = torch.tanh(layer(x) + pooled)
            states.append(x)
        return states[0], states[1], states[2]


class Image(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 5, 4, stride=4)
        self.fc = torch.nn.Linear(5, 5)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        a = self.conv(pixel_values).mean(dim=(2, 3))
        b = torch.relu(self.fc(a))
        c = self.fc(b)
        return torch.stack([a, b, c], 1)


def pattern():
    # The same 8x8 RGB pattern as the C++ test: (x*7 + y*13 + c*29) % 256.
    p = np.zeros((8, 8, 3), dtype=np.float64)
    for y in range(8):
        for x in range(8):
            for c in range(3):
                p[y, x, c] = (x * 7 + y * 13 + c * 29) % 256
    mean = np.array([0.4, 0.5, 0.6])
    std = np.array([0.2, 0.25, 0.3])
    return ((p / 255.0 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    text = torch.jit.script(Text().eval())
    image = torch.jit.script(Image().eval())
    text.save(os.path.join(out, "text.pt"))
    image.save(os.path.join(out, "image.pt"))
    # Toy vocab ids: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 then the words.
    ids = torch.tensor([[2, 5, 6, 3], [2, 7, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    with torch.no_grad():
        hs = text(ids, mask)
        text_expected = torch.stack([h[:, 0] for h in hs], 1)
        # Mean pooling: the last state averaged over the unmasked tokens.
        m = mask.double().unsqueeze(-1)
        text_mean_expected = (hs[-1].double() * m).sum(1) / m.sum(1)
        image_expected = image(torch.from_numpy(pattern()))
    safetensors_np.save(os.path.join(out, "expected.safetensors"), {
        "text_expected": text_expected.numpy(),
        "text_mean_expected": text_mean_expected.float().numpy(),
        "image_expected": image_expected.numpy()})


if __name__ == "__main__":
    main()
