"""Build the tiny Llama model the peer servers run, without torch and without any download.

One vocabulary and one set of float32 weights are written twice: as a GGUF file for llama.cpp and
as a Hugging Face folder for transformers and vLLM. The weights are not trained; they are laid out
so that greedy decoding is a readable, deterministic walk through the NATO alphabet that cycles
forever (``alpha bravo ... zulu alpha ...``), because the suite's probes are black-box and need
long, predictable output rather than a model that follows instructions.

How the weights do that: every token that can be generated gets an orthonormal output direction
(rows of a Hadamard matrix). The embedding of token ``t`` points along the direction of the token
that should follow ``t``; the transformer blocks are tiny (they barely perturb the residual
stream), so after the final RMSNorm the logits are ~12 for the successor and ~0 for the rest.

Triggers the probes can rely on:

- any ordinary prompt continues with NATO words (a letter continues with its own word, a word
  with the next one), so ``max_tokens`` limits are always hit and stop words can be picked from
  the middle of the output;
- every NATO word has the runner-up ``roger`` 1.5 logits behind its successor, so a frequency or
  presence penalty of 2 visibly changes the output once the walk revisits words (after 26 tokens),
  while llama.cpp's default repeat penalty (1.1) does not;
- a prompt ending in ``~`` yields `` over`` and then end-of-sequence (``finish_reason: "stop"``);
- token ids 100 and 200 are the ordinary words `` yes`` and `` no`` and are otherwise never
  generated, so ``logit_bias`` of +100 on either dominates the output.

The chat template renders every message but the last one closed, and leaves the last message open,
so a chat reply continues the last message's text and the same triggers work in chat.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt
from safetensors.numpy import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

from conformance.peers.model import (
    BUILDER_VERSION,
    CONTEXT_WINDOW,
    GGUF_NAME,
    MANIFEST_NAME,
    MODEL_NAME,
    TinyModel,
    is_built,
    model_paths,
)

FloatArray = npt.NDArray[np.float32]

HIDDEN = 128
LAYERS = 2
HEADS = 4
HEAD_DIM = HIDDEN // HEADS
FFN = 256
RMS_EPS = 1e-5
ROPE_THETA = 10000.0
SEED = 20240611

#: Logit of the intended next token, and how far the runner-up ``roger`` trails it.
TOP_LOGIT = 12.0
RUNNER_UP_GAP = 1.5
#: Standard deviation of the transformer blocks' weights and of the embedding noise.
BLOCK_STD = 0.002
EMBED_NOISE_STD = 0.002
#: Rows of ``output.weight`` for tokens that are never meant to be generated: small but non-zero,
#: so that the ~0 logits have no exact ties (ties would make banned-token probes server-dependent).
QUIET_ROW_STD = 0.01

SPACE = "\u2581"  # SentencePiece's visible space "▁"
UNK, BOS, EOS_SPM, IM_START, IM_END = "<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"
SPECIALS = (UNK, BOS, EOS_SPM, IM_START, IM_END)
EOS_ID = 4  # <|im_end|> ends a turn, so it is the end-of-sequence token for every server

NATO = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliett",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
)
RUNNER_UP = "roger"
END_WORD = "over"
END_TRIGGER = "~"
#: Ordinary words placed at fixed ids so that ``logit_bias`` probes can name them.
FIXED_IDS = {100: "yes", 200: "no"}

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] }}"
    "{% if not loop.last %}{{ '<|im_end|>\\n' }}{% endif %}"
    "{% endfor %}"
)


@dataclass(frozen=True)
class Vocab:
    """The shared vocabulary: pieces in id order, their scores and GGUF token types."""

    pieces: list[str]
    scores: list[float]
    types: list[int]

    def id(self, piece: str) -> int:
        """Return the id of ``piece``; raises KeyError if it is not in the vocabulary."""
        return self.pieces.index(piece)


# GGUF token types (gguf.TokenType); repeated here so building the vocabulary needs no import.
_NORMAL, _UNKNOWN, _CONTROL, _BYTE = 1, 2, 3, 6


def _piece_score(piece: str) -> float:
    # Fewer pieces always win in Unigram's Viterbi (each costs ~1), and in llama.cpp's SPM merge
    # every multi-character piece has exactly one merge path; so both tokenizers pick the
    # longest word prefix and prompt token counts agree.
    return -1.0 - 0.01 * len(piece)


def build_vocab() -> Vocab:
    """Return the vocabulary, identical for the GGUF and the Hugging Face tokenizer.

    Layout: specials 0-4, ``▁`` and the printable ASCII characters 5-99, word pieces from 100
    (``▁yes`` at 100, ``▁no`` at 200), then the 256 byte-fallback pieces ``<0x00>``..``<0xFF>``.
    """
    chars = [SPACE] + [chr(c) for c in range(0x21, 0x7F)]
    words = [*NATO, RUNNER_UP, END_WORD, *FIXED_IDS.values()]
    # Every prefix of "▁word" must be a piece too: llama.cpp's SPM tokenizer reaches a word only
    # by merging adjacent pieces whose concatenation is in the vocabulary.
    word_pieces = {SPACE + w[:n] for w in words for n in range(1, len(w) + 1)}
    first = len(SPECIALS) + len(chars)
    ordered = sorted(word_pieces - {SPACE + w for w in FIXED_IDS.values()})
    for token_id in sorted(FIXED_IDS):
        ordered.insert(token_id - first, SPACE + FIXED_IDS[token_id])
    pieces = [*SPECIALS, *chars, *ordered, *(f"<0x{b:02X}>" for b in range(256))]
    types = (
        [_UNKNOWN, _CONTROL, _CONTROL, _CONTROL, _CONTROL]
        + [_NORMAL] * (len(chars) + len(ordered))
        + [_BYTE] * 256
    )
    scores = [0.0] * len(SPECIALS) + [_piece_score(p) for p in [*chars, *ordered]] + [0.0] * 256
    vocab = Vocab(pieces=pieces, scores=scores, types=types)
    for token_id, word in FIXED_IDS.items():
        if vocab.pieces[token_id] != SPACE + word:  # pragma: no cover - layout invariant
            raise AssertionError(f"token {token_id} is {vocab.pieces[token_id]!r}, not {word!r}")
    return vocab


def successors(vocab: Vocab) -> dict[int, tuple[int, int | None]]:
    """Map every token id to (the token that should follow it, its runner-up or None)."""
    nato_ids = [vocab.id(SPACE + w) for w in NATO]
    runner = vocab.id(SPACE + RUNNER_UP)
    start = nato_ids[0]
    table: dict[int, tuple[int, int | None]] = {}
    for token_id, piece in enumerate(vocab.pieces):
        table[token_id] = (start, None)
        if piece == END_TRIGGER:
            table[token_id] = (vocab.id(SPACE + END_WORD), None)
        elif piece == SPACE + END_WORD:
            table[token_id] = (EOS_ID, None)
        elif len(piece) == 1 and piece.isascii() and piece.isalpha():
            # A letter continues with its own NATO word: "...times" -> " sierra tango ...".
            table[token_id] = (nato_ids[ord(piece.lower()) - ord("a")], None)
        elif piece.startswith(SPACE) and len(piece) > 1 and vocab.types[token_id] == _NORMAL:
            # A word or word prefix continues like the NATO word it starts (" alp" like " alpha").
            word = next((w for w in NATO if w.startswith(piece[1:])), None)
            if word is not None:
                nxt = nato_ids[(NATO.index(word) + 1) % len(NATO)]
                table[token_id] = (nxt, runner if piece == SPACE + word else None)
    return table


def _hadamard(n: int) -> FloatArray:
    # Sylvester's construction: exactly orthogonal rows with no floating-point rounding, so the
    # output directions are bit-identical on every machine.
    h = np.ones((1, 1), dtype=np.float64)
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    out: FloatArray = (h / np.sqrt(n)).astype(np.float32)
    return out


def build_weights(vocab: Vocab, seed: int = SEED) -> dict[str, FloatArray]:
    """Return the model's tensors under their Hugging Face names (float32, HF layout)."""
    rng = np.random.default_rng(seed)
    n_vocab = len(vocab.pieces)
    table = successors(vocab)
    # Tokens that are ever intended as an output get a direction of their own; one more direction
    # ("sink") pads embeddings without a runner-up so every embedding has the same norm.
    produced = sorted({t for pair in table.values() for t in pair if t is not None})
    rows = rng.permutation(HIDDEN)[: len(produced) + 1]
    basis = _hadamard(HIDDEN)[rows]
    direction = {tok: basis[i] for i, tok in enumerate(produced)}
    sink = basis[len(produced)]

    ratio = (TOP_LOGIT - RUNNER_UP_GAP) / TOP_LOGIT
    embed = np.empty((n_vocab, HIDDEN), dtype=np.float32)
    for token_id, (nxt, runner) in table.items():
        second = direction[runner] if runner is not None else sink
        embed[token_id] = direction[nxt] + ratio * second
    embed += rng.standard_normal(embed.shape).astype(np.float32) * EMBED_NOISE_STD

    # After RMSNorm the hidden state has norm sqrt(HIDDEN); scale output rows so that the
    # successor's logit is TOP_LOGIT (and the runner-up's TOP_LOGIT - RUNNER_UP_GAP).
    scale = TOP_LOGIT * float(np.sqrt(1.0 + ratio * ratio)) / float(np.sqrt(HIDDEN))
    output = rng.standard_normal((n_vocab, HIDDEN)).astype(np.float32) * QUIET_ROW_STD
    for tok, vec in direction.items():
        output[tok] = vec * scale

    def small(*shape: int) -> FloatArray:
        return (rng.standard_normal(shape) * BLOCK_STD).astype(np.float32)

    tensors: dict[str, FloatArray] = {"model.embed_tokens.weight": embed}
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        tensors[p + "input_layernorm.weight"] = np.ones(HIDDEN, dtype=np.float32)
        tensors[p + "self_attn.q_proj.weight"] = small(HIDDEN, HIDDEN)
        tensors[p + "self_attn.k_proj.weight"] = small(HIDDEN, HIDDEN)
        tensors[p + "self_attn.v_proj.weight"] = small(HIDDEN, HIDDEN)
        tensors[p + "self_attn.o_proj.weight"] = small(HIDDEN, HIDDEN)
        tensors[p + "post_attention_layernorm.weight"] = np.ones(HIDDEN, dtype=np.float32)
        tensors[p + "mlp.gate_proj.weight"] = small(FFN, HIDDEN)
        tensors[p + "mlp.up_proj.weight"] = small(FFN, HIDDEN)
        tensors[p + "mlp.down_proj.weight"] = small(HIDDEN, FFN)
    tensors["model.norm.weight"] = np.ones(HIDDEN, dtype=np.float32)
    tensors["lm_head.weight"] = output
    return tensors


def _rope_permute(weight: FloatArray) -> FloatArray:
    # HF Llama rotates the two halves of each head; GGML rotates adjacent pairs. llama.cpp's own
    # converter reorders q/k rows the same way, so both files compute the same attention.
    rows, cols = weight.shape
    per_head = rows // HEADS
    return weight.reshape(HEADS, 2, per_head // 2, cols).swapaxes(1, 2).reshape(rows, cols).copy()


_GGUF_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def _gguf_name(hf_name: str) -> str:
    if hf_name in _GGUF_NAMES:
        return _GGUF_NAMES[hf_name]
    _, _, layer, rest = hf_name.split(".", 3)
    return f"blk.{layer}.{_GGUF_NAMES[rest]}"


def write_gguf(path: Path, vocab: Vocab, tensors: dict[str, FloatArray]) -> None:
    """Write the model and its tokenizer (with chat template) as a float32 GGUF file."""
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(MODEL_NAME)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(CONTEXT_WINDOW)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_layer_norm_rms_eps(RMS_EPS)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_rope_freq_base(ROPE_THETA)
    writer.add_vocab_size(len(vocab.pieces))
    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab.pieces)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(EOS_ID)
    # No BOS and no leading space: the HF tokenizer adds neither, so prompt counts match.
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, tensor in tensors.items():
        permute = name.endswith(("q_proj.weight", "k_proj.weight"))
        writer.add_tensor(_gguf_name(name), _rope_permute(tensor) if permute else tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def hf_tokenizer_json(vocab: Vocab) -> str:
    """Return tokenizer.json: a Unigram model over the same pieces and ids, with byte fallback."""
    model = models.Unigram(list(zip(vocab.pieces, vocab.scores, strict=True)), 0, True)
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Replace(" ", SPACE)
    tok.decoder = decoders.Sequence(
        [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    return tok.to_str(pretty=True)


def hf_files(vocab: Vocab) -> dict[str, str]:
    """Return the JSON files of the Hugging Face folder, besides weights and tokenizer.json."""
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "max_position_embeddings": CONTEXT_WINDOW,
        "rms_norm_eps": RMS_EPS,
        "rope_theta": ROPE_THETA,
        "vocab_size": len(vocab.pieces),
        "bos_token_id": 1,
        "eos_token_id": EOS_ID,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": "float32",
    }
    generation = {"bos_token_id": 1, "eos_token_id": EOS_ID}
    special_map = {
        "bos_token": BOS,
        "eos_token": IM_END,
        "unk_token": UNK,
        "additional_special_tokens": [IM_START, IM_END],
    }
    tokenizer_config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": CONTEXT_WINDOW,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
        **{k: v for k, v in special_map.items() if k != "additional_special_tokens"},
        "added_tokens_decoder": {
            str(i): {
                "content": s,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for i, s in enumerate(SPECIALS)
        },
    }
    return {
        "config.json": _dumps(config),
        "generation_config.json": _dumps(generation),
        "special_tokens_map.json": _dumps(special_map),
        "tokenizer_config.json": _dumps(tokenizer_config),
    }


def _dumps(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_hf(folder: Path, vocab: Vocab, tensors: dict[str, FloatArray]) -> None:
    """Write the Hugging Face folder (config, weights, tokenizer, chat template)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "tokenizer.json").write_text(hf_tokenizer_json(vocab), encoding="utf-8")
    for name, text in hf_files(vocab).items():
        (folder / name).write_text(text, encoding="utf-8")


def _manifest(vocab: Vocab) -> dict[str, object]:
    return {
        "builder_version": BUILDER_VERSION,
        "name": MODEL_NAME,
        "context_window": CONTEXT_WINDOW,
        "vocab_size": len(vocab.pieces),
        "seed": SEED,
    }


def build(out_dir: Path, *, force: bool = False) -> TinyModel:
    """Build the tiny model under ``out_dir`` unless this builder version already did.

    Writes ``tiny.gguf``, the Hugging Face folder ``tiny/`` and ``tinymodel.json`` (the manifest
    checked on the next call). Files are written to a temporary folder first and moved into place,
    so an interrupted build never looks complete. The output bytes depend only on the code.
    """
    model = model_paths(out_dir)
    if not force and is_built(out_dir):
        return model
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab()
    tensors = build_weights(vocab)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build-") as tmp:
        staging = Path(tmp)
        write_gguf(staging / GGUF_NAME, vocab, tensors)
        write_hf(staging / MODEL_NAME, vocab, tensors)
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
        if model.hf_dir.exists():
            shutil.rmtree(model.hf_dir)
        os.replace(staging / GGUF_NAME, model.gguf)
        os.replace(staging / MODEL_NAME, model.hf_dir)
        (out_dir / MANIFEST_NAME).write_text(_dumps(_manifest(vocab)), encoding="utf-8")
    return model
