"""A numpy forward pass of the tiny Llama model, to check its behaviour without any server."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from conformance.peers import tinymodel as tm

Array = npt.NDArray[np.float32]


def _rms(x: Array, w: Array) -> Array:
    return (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + tm.RMS_EPS) * w).astype(np.float32)


def _rope(x: Array) -> Array:
    # HF layout: rotate the two halves of each head.
    seq = x.shape[0]
    half = tm.HEAD_DIM // 2
    inv = 1.0 / (tm.ROPE_THETA ** (np.arange(half) * 2.0 / tm.HEAD_DIM))
    ang = np.arange(seq)[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1).astype(np.float32)


def logits(tensors: dict[str, Array], ids: list[int]) -> Array:
    """Return the logits after the last token of ``ids``."""
    x = tensors["model.embed_tokens.weight"][ids]
    seq = len(ids)
    mask = np.triu(np.full((seq, seq), -np.inf, dtype=np.float32), 1)
    for layer in range(tm.LAYERS):
        p = f"model.layers.{layer}."
        h = _rms(x, tensors[p + "input_layernorm.weight"])
        q = (h @ tensors[p + "self_attn.q_proj.weight"].T).reshape(seq, tm.HEADS, tm.HEAD_DIM)
        k = (h @ tensors[p + "self_attn.k_proj.weight"].T).reshape(seq, tm.HEADS, tm.HEAD_DIM)
        v = (h @ tensors[p + "self_attn.v_proj.weight"].T).reshape(seq, tm.HEADS, tm.HEAD_DIM)
        q, k = _rope(q), _rope(k)
        att = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(tm.HEAD_DIM) + mask
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = np.einsum("hqk,khd->qhd", att, v).reshape(seq, tm.HIDDEN)
        x = x + o @ tensors[p + "self_attn.o_proj.weight"].T
        h = _rms(x, tensors[p + "post_attention_layernorm.weight"])
        g = h @ tensors[p + "mlp.gate_proj.weight"].T
        u = h @ tensors[p + "mlp.up_proj.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ tensors[p + "mlp.down_proj.weight"].T
    x = _rms(x, tensors["model.norm.weight"])
    out: Array = (x[-1] @ tensors["lm_head.weight"].T).astype(np.float32)
    return out


def greedy(
    tensors: dict[str, Array],
    ids: list[int],
    steps: int,
    *,
    frequency_penalty: float = 0.0,
    presence_penalty: float = 0.0,
    bias: dict[int, float] | None = None,
) -> list[int]:
    """Greedy decoding with OpenAI-style penalties over generated tokens; stops at EOS."""
    ids = list(ids)
    generated: list[int] = []
    for _ in range(steps):
        row = logits(tensors, ids).astype(np.float64)
        for tok in set(generated):
            row[tok] -= frequency_penalty * generated.count(tok) + presence_penalty
        for tok, b in (bias or {}).items():
            row[tok] += b
        nxt = int(np.argmax(row))
        generated.append(nxt)
        ids.append(nxt)
        if nxt == tm.EOS_ID:
            break
    return generated
