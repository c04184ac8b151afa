#!/usr/bin/python3
"""The trainer's documented training step in plain PyTorch, for speed only.

An independent implementation of shared/DESIGN.md's model as
trainer/README.md describes it ("Model decisions"): IISAN intra-modal path
over the cached text states (every second state, standardised), per-path
head + fuse, a SASRec-style post-LN user encoder (2 blocks, 2 heads, d 64,
FFN 256, GELU, dropout 0.1, learned end-aligned positions), the in-batch
softmax over the batch's distinct targets with the log-popularity
correction and the user's own training items masked, Adam with two groups.
Leave-one-out split and windows as trainer/data/sequence_split.h.

Prints one JSON line: steps/s over the timed steps (after a warm-up), the
threads, torch's version. Run by //trainer/bench:train_bench when
/usr/bin/python3 can import torch; standalone:
  /usr/bin/python3 reference_step.py --interactions=users.tsv --text_cache=c.safetensors
"""
import argparse
import json
import math
import random
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_cache(path):
    """(keys, states [N, S, H] float32) of a recsys.hidden_states.v1 file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        raw = np.memmap(path, dtype=np.uint8, mode="r")

    def tensor(name, dtype):
        t = header[name]
        b, e = t["data_offsets"]
        return np.frombuffer(raw[base + b:base + e], dtype=dtype).reshape(t["shape"])

    hs = header["hidden_states"]
    states = tensor("hidden_states", np.float16 if hs["dtype"] == "F16" else np.float32)
    kb = tensor("key_bytes", np.uint8).tobytes()
    ko = tensor("key_offsets", np.int64)
    keys = [kb[ko[i]:ko[i + 1]].decode() for i in range(len(ko) - 1)]
    return keys, states


def read_users(path):
    users = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or "\t" not in line:
                continue
            _, items = line.split("\t", 1)
            users.append(items.split())
    return users


def split_windows(seqs, max_len):
    windows, own, counts = [], [], {}
    for u, seq in enumerate(seqs):
        train = seq[:len(seq) - 2] if len(seq) >= 3 else seq
        for i in train:
            counts[i] = counts.get(i, 0) + 1
        own.append(np.array(sorted(set(train))))
        end = len(train)
        while end >= 2:
            begin = max(0, end - (max_len + 1))
            windows.append((u, train[begin:end]))
            end = begin + 1
            if begin == 0:
                break
    return windows, own, counts


class SideBlock(nn.Module):
    def __init__(self, dim, bottleneck):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)

    def forward(self, x):
        return self.up(F.relu(self.down(x))) + x


class ItemTower(nn.Module):
    def __init__(self, blocks, dim, bottleneck, d):
        super().__init__()
        self.blocks = nn.ModuleList(SideBlock(dim, bottleneck) for _ in range(blocks))
        self.gates = nn.Parameter(torch.zeros(blocks))
        self.head = nn.Linear(dim, d)
        self.fuse = nn.Linear(d, d)

    def forward(self, h):  # [U, K, D]
        s = torch.zeros(h.shape[0], h.shape[2])
        for i, block in enumerate(self.blocks):
            g = torch.sigmoid(self.gates[i] / 0.1)
            s = block(g * h[:, i] + (1 - g) * s)
        return self.fuse(self.head(s))


class Block(nn.Module):
    def __init__(self, d, heads, ffn, p):
        super().__init__()
        self.h = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ln1 = nn.LayerNorm(d)
        self.ffn1 = nn.Linear(d, ffn)
        self.ffn2 = nn.Linear(ffn, d)
        self.ln2 = nn.LayerNorm(d)
        self.drop = nn.Dropout(p)

    def forward(self, x, allowed):
        b, l, d = x.shape
        q, k, v = self.qkv(x).view(b, l, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.h)
        s = s.masked_fill(~allowed.unsqueeze(1), float("-inf"))
        ctx = (self.drop(torch.softmax(s, -1)) @ v).permute(0, 2, 1, 3).reshape(b, l, d)
        y = self.ln1(x + self.drop(self.out(ctx)))
        return self.ln2(y + self.drop(self.ffn2(self.drop(F.gelu(self.ffn1(y))))))


class UserEncoder(nn.Module):
    def __init__(self, d, max_len, heads=2, layers=2, ffn=256, p=0.1):
        super().__init__()
        self.pos = nn.Embedding(max_len, d)
        nn.init.normal_(self.pos.weight, 0, 0.02)
        self.ln = nn.LayerNorm(d)
        self.drop = nn.Dropout(p)
        self.blocks = nn.ModuleList(Block(d, heads, ffn, p) for _ in range(layers))

    def forward(self, x, valid):  # [B, L, d], [B, L]
        l = x.shape[1]
        x = self.drop(self.ln(x + self.pos.weight[-l:])) * valid.unsqueeze(-1)
        causal = torch.ones(l, l, dtype=torch.bool).tril()
        allowed = causal & (valid.unsqueeze(1) | torch.eye(l, dtype=torch.bool))
        for b in self.blocks:
            x = b(x, allowed)
        return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--interactions", required=True)
    ap.add_argument("--text_cache", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup_steps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--max_len", type=int, default=10)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    keys, raw = read_cache(a.text_cache)
    row = {k: i for i, k in enumerate(keys)}
    seqs_keys = read_users(a.interactions)
    item_ids, seqs = {}, []
    for s in seqs_keys:
        seqs.append([item_ids.setdefault(k, len(item_ids)) for k in s])
    rows = np.array([row[k] for k, _ in sorted(item_ids.items(), key=lambda kv: kv[1])])
    sel = list(range(0, raw.shape[1], 2))  # every second state
    states = torch.from_numpy(raw[rows][:, sel].astype(np.float32))  # [N, K, H]
    mean = states.mean(0)
    std = states.std(0, unbiased=False)
    states = (states - mean) * torch.where(std > 0, 1 / std, torch.zeros_like(std))

    windows, own, counts = split_windows(seqs, a.max_len)
    n_items = len(item_ids)
    total = sum(counts.values())
    log_prior = torch.tensor([math.log(max(counts.get(i, 0), 0.5) / total)
                              for i in range(n_items)])
    d, L = 64, a.max_len
    tower = ItemTower(states.shape[1], states.shape[2], 64, d)
    users = UserEncoder(d, L)
    opt = torch.optim.Adam([{"params": tower.parameters(), "lr": 1e-3},
                            {"params": users.parameters(), "lr": 1e-3}])
    random.Random(a.seed).shuffle(windows)

    def step(batch):
        items = sorted({i for _, w in batch for i in w})
        local = {i: j for j, i in enumerate(items)}
        targets = sorted({i for _, w in batch for i in w[1:]})
        tl = {i: j for j, i in enumerate(targets)}
        B, U, C = len(batch), len(items), len(targets)
        seq = torch.full((B, L), U, dtype=torch.long)
        valid = torch.zeros(B, L, dtype=torch.bool)
        pos, prow, tgt = [], [], []
        excl = torch.zeros(B, C, dtype=torch.bool)
        targets_np = np.array(targets)
        for r, (u, w) in enumerate(batch):
            n_in = len(w) - 1
            for t in range(n_in):
                seq[r, L - n_in + t] = local[w[t]]
                valid[r, L - n_in + t] = True
                pos.append(r * L + L - n_in + t)
                prow.append(r)
                tgt.append(tl[w[t + 1]])
            excl[r] = torch.from_numpy(np.isin(targets_np, own[u]))
        ids = torch.tensor(items)
        emb = tower(states.index_select(0, ids))
        table = torch.cat([emb, torch.zeros(1, d)])
        out = users(table[seq], valid).reshape(B * L, d)
        q = out[torch.tensor(pos)]
        cand = emb[torch.tensor([local[t] for t in targets])]
        logits = q @ cand.t() - log_prior[torch.tensor(targets)].unsqueeze(0)
        tgt_t = torch.tensor(tgt)
        ex = excl[torch.tensor(prow)]
        ex[torch.arange(len(tgt)), tgt_t] = False
        loss = F.cross_entropy(logits.masked_fill(ex, float("-inf")), tgt_t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    n = a.warmup_steps + a.steps
    t0 = None
    for s in range(n):
        if s == a.warmup_steps:
            t0 = time.perf_counter()
        batch = windows[(s * a.batch_size) % len(windows):][:a.batch_size]
        step(batch)
    secs = time.perf_counter() - t0
    print(json.dumps({"impl": "plain PyTorch (trainer/bench/reference_step.py)",
                      "torch": torch.__version__, "threads": a.threads,
                      "timed_steps": a.steps, "steps_per_second": a.steps / secs,
                      "ms_per_step": 1000 * secs / a.steps}))


if __name__ == "__main__":
    main()
