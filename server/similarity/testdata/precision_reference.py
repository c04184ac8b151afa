"""Independent numpy computation of P@N (micro/macro) and recall@k.

Reads the case written by precision_at_n_test.cc:
  ns N1 N2 ...            cut-offs
  count LABEL C           index entries of class LABEL
  query LABEL R1 R2 ...   a query's class and its result classes, best first
  k K                     recall cut-off
  exact K1 K2 ...         exact result keys of query i (i-th exact line)
  approx K1 K2 ...        approximate result keys of query i
and prints "micro N value", "macro N value", "recall value" lines.
"""
import sys

import numpy as np


def main(path):
    ns, counts, queries, exact, approx, k = [], {}, [], [], [], None
    with open(path) as f:
        for line in f:
            tok = line.split()
            if not tok:
                continue
            if tok[0] == "ns":
                ns = [int(t) for t in tok[1:]]
            elif tok[0] == "count":
                counts[tok[1]] = int(tok[2])
            elif tok[0] == "query":
                queries.append((tok[1], tok[2:]))
            elif tok[0] == "k":
                k = int(tok[1])
            elif tok[0] == "exact":
                exact.append(tok[1:])
            elif tok[0] == "approx":
                approx.append(tok[1:])
    kept = [(lab, res) for lab, res in queries if counts.get(lab, 0) > 0]
    labels = np.array([lab for lab, _ in kept])
    for big_n in ns:
        p = np.zeros(len(kept))
        for i, (lab, res) in enumerate(kept):
            n = min(big_n, counts[lab])
            top = np.array(res[:n] + [None] * max(0, n - len(res)), dtype=object)
            p[i] = np.sum(top == lab) / n
        print("micro", big_n, repr(float(np.mean(p))))
        classes = np.unique(labels)
        print("macro", big_n,
              repr(float(np.mean([np.mean(p[labels == c]) for c in classes]))))
    recalls = []
    for ex, ap in zip(exact, approx):
        n = min(k, len(ex))
        if n == 0:
            continue
        recalls.append(len(np.intersect1d(np.array(ex[:n]), np.array(ap[:k]))) / n)
    print("recall", repr(float(np.mean(recalls))))


if __name__ == "__main__":
    main(sys.argv[1])
