"""Converters for feature extraction: TfIdfVectorizer and ai.onnx.ml's Binarizer and ArrayFeatureExtractor."""

from __future__ import annotations

import numpy as np

from edgecc.ir.types import np_dtype

from . import converter
from ._util import scalar


@converter("Binarizer", domain="ai.onnx.ml")
def _binarizer(ctx, inputs, attrs):
    x = inputs[0]
    above = ctx.emit("greater", x, scalar(ctx, attrs.get("threshold", 0.0), x.dtype, "threshold"))
    return ctx.emit("cast", above, to=x.dtype)


@converter("ArrayFeatureExtractor", domain="ai.onnx.ml")
def _array_feature_extractor(ctx, inputs, attrs):
    x, indices = inputs[0], inputs[1]
    if indices.type.rank != 1:
        indices = ctx.emit("reshape", indices, shape=(indices.type.size,))
    return ctx.emit("gather", x, indices, axis=x.type.rank - 1)


@converter("TfIdfVectorizer", since=9)
def _tfidf_vectorizer(ctx, inputs, attrs):
    """n-gram counts of an integer sequence against a static pool: for each pool n-gram and skip
    distance, an equality test per n-gram element on shifted slices, summed over positions."""
    x = inputs[0]
    if "pool_int64s" not in attrs:
        raise ctx.unsupported("string pools")
    pool = list(attrs["pool_int64s"])
    counts = list(attrs["ngram_counts"])
    indexes = list(attrs["ngram_indexes"])
    low, high = attrs["min_gram_length"], attrs["max_gram_length"]
    max_skip = attrs["max_skip_count"]
    mode = attrs["mode"]
    weights = attrs.get("weights")
    if x.type.rank not in (1, 2):
        raise ctx.fail(f"input of rank {x.type.rank}; TfIdfVectorizer takes [C] or [B, C]")
    rows = x if x.type.rank == 2 else ctx.emit("reshape", x, shape=(1, x.shape[0]))
    length = rows.shape[1]
    grams = []  # (n-gram, its id)
    gram_id = 0
    for size, start in enumerate(counts, start=1):
        end = counts[size] if size < len(counts) else len(pool)
        for k in range((end - start) // size):
            if low <= size <= high:
                grams.append((pool[start + k * size: start + (k + 1) * size], gram_id))
            gram_id += 1
    out_size = max(indexes) + 1
    columns = [None] * out_size
    zero_col = ctx.const(np.zeros((rows.shape[0], 1), np.float32), "zero")
    for gram, gid in grams:
        size = len(gram)
        total = None
        for distance in range(1, (max_skip + 2) if size > 1 else 2):
            span = (size - 1) * distance
            if span >= length:
                continue
            match = None
            for j, value in enumerate(gram):
                part = ctx.emit("slice", rows, starts=(j * distance,), ends=(length - span + j * distance,), axes=(1,))
                eq = ctx.emit("equal", part, ctx.const(np.array(value, dtype=np_dtype(rows.dtype)), "gram"))
                match = eq if match is None else ctx.emit("logical_and", match, eq)
            hits = ctx.emit("reduce_sum", ctx.emit("cast", match, to="float32"), axes=(1,), keepdims=1)
            total = hits if total is None else ctx.emit("add", total, hits)
        column = total if total is not None else zero_col
        index = indexes[gid]
        columns[index] = column if columns[index] is None else ctx.emit("add", columns[index], column)
    columns = [c if c is not None else zero_col for c in columns]
    y = columns[0] if len(columns) == 1 else ctx.emit("concat", *columns, axis=1)
    if mode in ("IDF", "TFIDF"):
        w = np.asarray(weights if weights else [1.0] * out_size, np.float32).reshape(1, -1)
        if mode == "IDF":
            present = ctx.emit("greater", y, ctx.const(np.array(0, np.float32), "zero"))
            y = ctx.emit("where", present, ctx.const(w, "weights"), ctx.const(np.array(0, np.float32), "zero"))
        elif weights:
            y = ctx.emit("mul", y, ctx.const(w, "weights"))
    elif mode != "TF":
        raise ctx.fail(f"unknown mode {mode}")
    return y if x.type.rank == 2 else ctx.emit("reshape", y, shape=(out_size,))
