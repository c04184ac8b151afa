#!/usr/bin/python3
"""Independent BERT (uncased) tokenizer in plain Python, following
transformers' BasicTokenizer + WordpieceTokenizer, with html.unescape for the
titles. Reads ITEMS (key<TAB>title) and writes one line of space-separated
ids per title ([CLS] ... [SEP], truncated to MAX_LEN) to OUT.
Usage: wordpiece_reference.py VOCAB ITEMS MAX_LEN OUT
"""
import html
import sys
import unicodedata


def is_whitespace(c):
    return c in " \t\n\r" or unicodedata.category(c) == "Zs"


def is_control(c):
    if c in "\t\n\r":
        return False
    return unicodedata.category(c) in ("Cc", "Cf")


def is_punct(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or
            0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F or
            0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or
            0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic(text):
    out = []
    for c in text:
        cp = ord(c)
        if cp == 0 or cp == 0xFFFD or is_control(c):
            continue
        if is_cjk(cp):
            out.append(" " + c + " ")
        elif is_whitespace(c):
            out.append(" ")
        else:
            out.append(c)
    words = []
    for tok in "".join(out).split():
        tok = unicodedata.normalize("NFD", tok.lower())
        tok = "".join(c for c in tok if unicodedata.category(c) != "Mn")
        cur = []
        for c in tok:
            if is_punct(c):
                if cur:
                    words.append("".join(cur))
                    cur = []
                words.append(c)
            else:
                cur.append(c)
        if cur:
            words.append("".join(cur))
    return words


def wordpiece(word, vocab):
    if len(word) > 100:
        return [vocab["[UNK]"]]
    ids, start = [], 0
    while start < len(word):
        end, cur = len(word), None
        while start < end:
            sub = word[start:end]
            if start > 0:
                sub = "##" + sub
            if sub in vocab:
                cur = vocab[sub]
                break
            end -= 1
        if cur is None:
            return [vocab["[UNK]"]]
        ids.append(cur)
        start = end
    return ids


def main():
    vocab_path, items_path, max_len, out_path = sys.argv[1:5]
    max_len = int(max_len)
    with open(vocab_path, encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    with open(items_path, encoding="utf-8") as f, open(out_path, "w") as out:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            title = line.split("\t", 1)[1]
            ids = []
            for w in basic(html.unescape(title)):
                ids.extend(wordpiece(w, vocab))
            ids = [vocab["[CLS]"]] + ids[:max_len - 2] + [vocab["[SEP]"]]
            out.write(" ".join(map(str, ids)) + "\n")


if __name__ == "__main__":
    main()
