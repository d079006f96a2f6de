"""Independent check of Vigil's sentence-encoder graph (issue 13).

Usage: encoder_parity.py ENCODER.onnx CHECKPOINT_DIR [VADER_DIR] [N_TEXTS]

- `onnx.checker` on the graph Vigil wrote;
- the texts (VADER's, a spread of N_TEXTS over its four files with the longest included, or a few
  built-in sentences without the data) tokenised by Python's `tokenizers` from the checkpoint's
  tokenizer.json as sentence-transformers does it (truncation at 256, padding to the longest);
- embeddings from onnxruntime on Vigil's graph against a NumPy forward pass written here from the
  BERT definition (float64, weights read from model.safetensors by parsing its header by hand);
- prints one JSON object: texts, min cosine, max |difference|, the checker's verdict.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import onnx
import onnxruntime as ort
from scipy.special import erf
from tokenizers import Tokenizer

BUILT_IN = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "Shares fell sharply after the profit warning.",
    "I am not happy with this service at all :(",
]


def load_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    n = struct.unpack("<Q", buf[:8])[0]
    header = json.loads(buf[8 : 8 + n])
    header.pop("__metadata__", None)
    types = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        dtype = np.dtype(types[t["dtype"]])
        out[name.removeprefix("bert.")] = np.frombuffer(
            buf, dtype=dtype, count=(b - a) // dtype.itemsize, offset=8 + n + a
        ).reshape(t["shape"])
    return out


class Bert:
    """The forward pass of a BERT encoder with mean pooling and L2 normalisation."""

    def __init__(self, directory):
        cfg = json.load(open(os.path.join(directory, "config.json")))
        self.w = {k: v.astype(np.float64) for k, v in load_safetensors(os.path.join(directory, "model.safetensors")).items() if v.dtype == np.float32}
        self.h, self.heads = cfg["hidden_size"], cfg["num_attention_heads"]
        self.layers, self.eps = cfg["num_hidden_layers"], cfg["layer_norm_eps"]

    def norm(self, x, p):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + self.eps) * self.w[p + ".weight"] + self.w[p + ".bias"]

    def linear(self, x, p):
        return x @ self.w[p + ".weight"].T + self.w[p + ".bias"]

    def encode(self, ids, mask):
        w, (b, s), dh = self.w, ids.shape, self.h // self.heads
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:s][None]
        x = self.norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        mask = mask.astype(np.float64)
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q, k, v = (
                self.linear(x, p + f"attention.self.{n}").reshape(b, s, self.heads, dh).transpose(0, 2, 1, 3)
                for n in ("query", "key", "value")
            )
            a = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh) + bias
            a = np.exp(a - a.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            c = (a @ v).transpose(0, 2, 1, 3).reshape(b, s, self.h)
            x = self.norm(x + self.linear(c, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            f = self.linear(x, p + "intermediate.dense")
            f = 0.5 * f * (1.0 + erf(f / math.sqrt(2.0)))
            x = self.norm(x + self.linear(f, p + "output.dense"), p + "output.LayerNorm")
        m = mask[:, :, None]
        pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def vader_texts(directory, n):
    texts = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        rows = [l.split("\t", 2) for l in open(path, encoding="utf-8", errors="replace").read().splitlines()]
        texts.append([r[2] for r in rows if len(r) == 3 and r[2].strip()])
    if not texts:
        return BUILT_IN
    per = max(1, n // len(texts))
    out = []
    for t in texts:
        step = max(1, len(t) // per)
        out += t[::step][:per] + [max(t, key=len)]
    return out


def main():
    graph, checkpoint = sys.argv[1], sys.argv[2]
    vader = sys.argv[3] if len(sys.argv) > 3 and os.path.isdir(sys.argv[3]) else None
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 400
    onnx.checker.check_model(graph, full_check=True)
    texts = vader_texts(vader, n) if vader else BUILT_IN
    tok = Tokenizer.from_file(os.path.join(checkpoint, "tokenizer.json"))
    tok.enable_truncation(256)
    tok.enable_padding()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    bert = Bert(checkpoint)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    cosines, worst = [], 0.0
    for start in range(0, len(order), 16):
        batch = [texts[i] for i in order[start : start + 16]]
        enc = tok.encode_batch(batch)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        got = session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0].astype(np.float64)
        want = bert.encode(ids, mask)
        cosines += list((got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1))
        worst = max(worst, float(np.abs(got - want).max()))
    print(json.dumps({"texts": len(texts), "vader": bool(vader), "min_cosine": float(min(cosines)),
                      "max_abs_difference": worst, "checker": "ok", "longest_tokens": int(max(len(e.ids) for e in tok.encode_batch(texts)))}))


if __name__ == "__main__":
    main()
