"""A BERT sentence encoder's forward pass in numpy: embeddings, N encoder layers, mean
pooling, L2 norm. Enough for all-MiniLM-L6-v2 (6 layers, 12 heads, 384 dims).

Why numpy and not llama.cpp (measured on the 2-core development machine, one BLAS or
ggml thread, 24 chunks of 256 word pieces, in CPU-seconds so that the machine's other
load does not count): this forward pass embeds 8.9-9.3 chunks per CPU-second; the same
weights converted to GGUF (F32, via the ``gguf`` package) ran 6.9 in llama.cpp one
sequence at a time, 6.6 quantised to Q8_0, and 2.2-2.4 with several sequences per
batch. Both reproduce the reference similarities (Q8_0 to within 0.002). numpy also
keeps the published safetensors as they are, with no conversion step at install.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class _Layer:
    qkv_w: Array  # (hidden, 3 * hidden), already transposed for x @ w
    qkv_b: Array
    out_w: Array
    out_b: Array
    norm1_w: Array
    norm1_b: Array
    up_w: Array
    up_b: Array
    down_w: Array
    down_b: Array
    norm2_w: Array
    norm2_b: Array


class BertEncoder:
    """Mean-pooled, L2-normalised sentence vectors from a BERT checkpoint's tensors."""

    def __init__(self, tensors: Mapping[str, npt.NDArray[np.generic]], *, heads: int,
                 layer_norm_eps: float = 1e-12) -> None:  # fmt: skip
        def get(name: str) -> Array:
            return np.ascontiguousarray(tensors[name], dtype=np.float32)

        self.heads = heads
        self.eps = layer_norm_eps
        self.word = get("embeddings.word_embeddings.weight")
        self.position = get("embeddings.position_embeddings.weight")
        self.token_type = get("embeddings.token_type_embeddings.weight")
        self.norm_w = get("embeddings.LayerNorm.weight")
        self.norm_b = get("embeddings.LayerNorm.bias")
        self.dimensions = int(self.word.shape[1])
        self.max_positions = int(self.position.shape[0])
        self.layers: list[_Layer] = []
        index = 0
        while f"encoder.layer.{index}.attention.self.query.weight" in tensors:
            p = f"encoder.layer.{index}."
            self.layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(
                        np.concatenate(
                            [
                                get(p + f"attention.self.{n}.weight")
                                for n in ("query", "key", "value")
                            ]
                        ).T
                    ),
                    qkv_b=np.concatenate(
                        [get(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")]
                    ),
                    out_w=np.ascontiguousarray(get(p + "attention.output.dense.weight").T),
                    out_b=get(p + "attention.output.dense.bias"),
                    norm1_w=get(p + "attention.output.LayerNorm.weight"),
                    norm1_b=get(p + "attention.output.LayerNorm.bias"),
                    up_w=np.ascontiguousarray(get(p + "intermediate.dense.weight").T),
                    up_b=get(p + "intermediate.dense.bias"),
                    down_w=np.ascontiguousarray(get(p + "output.dense.weight").T),
                    down_b=get(p + "output.dense.bias"),
                    norm2_w=get(p + "output.LayerNorm.weight"),
                    norm2_b=get(p + "output.LayerNorm.bias"),
                )
            )
            index += 1
        if not self.layers:
            raise ValueError("no encoder layers in the checkpoint")

    def encode(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> Array:
        """Sentence vectors for a padded batch: ``ids`` and ``mask`` are (batch, length)."""
        return normalise(self.mean_pooled(ids, mask))

    def mean_pooled(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> Array:
        """The mean of each sequence's last hidden states over its unpadded tokens."""
        batch, length = ids.shape
        hidden = self.dimensions
        head_dim = hidden // self.heads
        x = self.word[ids] + self.position[:length] + self.token_type[0]
        # Linear layers on (batch * length, hidden): one large product each.
        x = self._norm(x.reshape(batch * length, hidden), self.norm_w, self.norm_b)
        # Padding gets a large negative score so softmax gives it no weight.
        bias = ((1.0 - mask[:, None, None, :].astype(np.float32)) * -1e9).astype(np.float32)
        scale = np.float32(1.0 / math.sqrt(head_dim))
        for layer in self.layers:
            qkv = x @ layer.qkv_w + layer.qkv_b
            qkv = qkv.reshape(batch, length, 3, self.heads, head_dim).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, hidden)
            x = self._norm(x + context @ layer.out_w + layer.out_b, layer.norm1_w, layer.norm1_b)
            up = _gelu(x @ layer.up_w + layer.up_b)
            x = self._norm(x + up @ layer.down_w + layer.down_b, layer.norm2_w, layer.norm2_b)
        weights = mask.astype(np.float32)[:, :, None]
        pooled: Array = (x.reshape(batch, length, hidden) * weights).sum(axis=1) / np.maximum(
            weights.sum(axis=1), 1e-9
        )
        return pooled

    def _norm(self, x: Array, weight: Array, bias: Array) -> Array:
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        variance = (centred * centred).mean(axis=-1, keepdims=True)
        result: Array = centred / np.sqrt(variance + self.eps) * weight + bias
        return result


def normalise(vectors: npt.NDArray[np.floating]) -> Array:
    """Rows scaled to unit L2 length (an all-zero row stays zero), as float32."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    result: Array = matrix / np.maximum(norms, np.float32(1e-12))
    return result


def _gelu(x: Array) -> Array:
    """BERT's exact GELU, ``x * Φ(x)``, with erf from Abramowitz & Stegun 7.1.26.

    That approximation's error is below 1.5e-7, under float32 resolution here; numpy
    has no erf and ``math.erf`` per element would dominate the forward pass. Written
    in place: the intermediate activations are the largest arrays of the pass.
    """
    z = np.abs(x)
    z *= np.float32(1.0 / math.sqrt(2.0))
    t = z * np.float32(0.3275911)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    poly = t * np.float32(1.061405429)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(coefficient)
        poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # 1 - erf(|x| / sqrt 2)
    # x * Φ(x) = x/2 * (1 + erf(x / sqrt 2)); for x < 0, erf(x) = -erf(|x|).
    erf = np.float32(1.0) - poly
    np.copysign(erf, x, out=erf)
    erf += np.float32(1.0)
    erf *= x
    erf *= np.float32(0.5)
    return erf
