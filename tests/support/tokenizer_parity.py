"""Token ids of every VADER text (or a few built-in ones without the data) by Python's `tokenizers`
from a checkpoint's tokenizer.json, truncated as sentence-transformers does (256 tokens).

Usage: tokenizer_parity.py CHECKPOINT_DIR [VADER_DIR] > texts_and_ids.jsonl  ({"text", "ids"} per line)
"""
import json
import os
import sys

from tokenizers import Tokenizer

BUILT_IN = ["Good news!", "Shares fell 3% after the profit warning...", "naïve café — déjà vu", "I ❤️ this :)"]


def texts(directory):
    out = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            for line in open(path, encoding="utf-8", errors="replace").read().split("\n"):
                parts = line.rstrip("\r").split("\t", 2)
                if len(parts) == 3:
                    out.append(parts[2])
    return out


def main():
    checkpoint = sys.argv[1]
    vader = sys.argv[2] if len(sys.argv) > 2 and os.path.isdir(sys.argv[2]) else None
    tok = Tokenizer.from_file(os.path.join(checkpoint, "tokenizer.json"))
    tok.enable_truncation(256)
    tok.no_padding()
    for text in (texts(vader) if vader else BUILT_IN) + BUILT_IN:
        print(json.dumps({"text": text, "ids": tok.encode(text).ids}))


if __name__ == "__main__":
    main()
