"""Independent numpy check of similarity_eval's figures (--dump_dir).

  similarity_check.py images DIR       brute-force top-10 over the dumped
      vectors (float64), P@1..10 micro/macro with n = min(N, class size);
      compared with the endpoint's figures (DIR/endpoint.json) to 1e-6.
  similarity_check.py translation DIR  for every query, the examples the
      endpoint selected are the exact top-k by cosine (their cosines equal
      the brute-force top-k cosines to 1e-6) and their reported scores match.
Prints the figures; exits 1 on any mismatch.
"""
import json
import os
import sys

import numpy as np


def load(d, name, dim):
    return np.fromfile(os.path.join(d, name), dtype=np.float32).reshape(-1, dim).astype(np.float64)


def images(d):
    meta = json.load(open(os.path.join(d, "meta.json")))
    ep = json.load(open(os.path.join(d, "endpoint.json")))
    index = load(d, "index.f32", meta["d"])
    query = load(d, "query.f32", meta["d"])
    il = np.array(open(os.path.join(d, "index_labels.txt")).read().split("\n"))
    ql = np.array(open(os.path.join(d, "query_labels.txt")).read().split("\n"))
    assert len(il) == len(index) and len(ql) == len(query)
    top = np.empty((len(query), 10), dtype=np.int64)
    for s in range(0, len(query), 1000):
        sc = query[s:s + 1000] @ index.T
        top[s:s + 1000] = np.argsort(-sc, axis=1, kind="stable")[:, :10]
    counts = {c: int((il == c).sum()) for c in np.unique(il)}
    bad = 0
    for row in ep["endpoint"]:
        n = row["n"]
        p = np.zeros(len(query))
        for i in range(len(query)):
            m = min(n, counts[ql[i]])
            p[i] = (il[top[i, :m]] == ql[i]).sum() / m
        micro = p.mean()
        macro = np.mean([p[ql == c].mean() for c in np.unique(ql)])
        ok = abs(micro - row["micro"]) <= 1e-6 and abs(macro - row["macro"]) <= 1e-6
        bad += not ok
        print("P@%d micro %.6f (endpoint %.6f) macro %.6f (endpoint %.6f) %s" %
              (n, micro, row["micro"], macro, row["macro"], "ok" if ok else "MISMATCH"))
    return bad


def translation(d):
    meta = json.load(open(os.path.join(d, "meta.json")))
    index = load(d, "index.f32", meta["d"])
    query = load(d, "query.f32", meta["d"])
    k = meta["k"]
    rows = [list(map(int, l.split())) for l in open(os.path.join(d, "selected_rows.txt")).read().strip("\n").split("\n")]
    scores = [list(map(float, l.split())) for l in open(os.path.join(d, "selected_scores.txt")).read().strip("\n").split("\n")]
    assert len(rows) == len(query)
    bad, worst = 0, 0.0
    for q in range(len(query)):
        sc = index @ query[q]
        best = np.sort(sc)[::-1][:k]
        got = sc[rows[q]]
        diff = max(np.max(np.abs(np.sort(got)[::-1] - best)), np.max(np.abs(got - np.array(scores[q]))))
        worst = max(worst, diff)
        bad += diff > 1e-6 or len(rows[q]) != k
    print("translation: %d queries, %d not the exact top-%d by cosine, max |diff| %.2e" %
          (len(query), bad, k, worst))
    return bad


if __name__ == "__main__":
    bad = images(sys.argv[2]) if sys.argv[1] == "images" else translation(sys.argv[2])
    sys.exit(1 if bad else 0)
