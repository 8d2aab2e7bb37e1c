"""The reference server's toy model: a fixed tokenizer and a deterministic word generator.

Vocabulary (ids are stable: the tables below are the only source, and only ever appended to)

- ids 0-2: the special tokens ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``;
- then every word of ``WORDS`` with a leading space (`` alpha``), the *space words*, which
  cover ids 3-232, so ids 100 and 200 are ordinary words that the model can say;
- then the same words without the space, then a few punctuation pieces (``'": "'``, ...);
- then one token per ASCII character (0-127), then one per non-ASCII byte (0x80-0xFF).

``tokenize`` takes the longest vocabulary entry at each position and falls back to the UTF-8
bytes of a character outside it, so every string tokenizes and ``detokenize`` gives it back.
Chat prompts are rendered as ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message,
then ``<|im_start|>assistant\\n``, before they are tokenized and counted.

Generation

Only the space words are generated, so the output is readable words. A prompt picks a
*topic* of ``TOPIC_SIZE`` words from a hash of its token ids; at each step every topic word
gets a logit in [10, 13) and every other word one in [0, 4), drawn from a hash of the prompt
and the two previous tokens. Consequences the suite relies on:

- the output depends on the prompt, and is the same for the same request (greedy decoding at
  temperature 0; with ``seed``, sampling is reproducible; without it, it is not);
- with 12 topic words, 32 tokens must repeat words, and the runner-up is usually well within
  2.0 of the top logit, so presence_penalty 2.0 and frequency_penalty 2.0 change the text
  (OpenAI's formula: ``logit -= count * frequency_penalty + (count > 0) * presence_penalty``);
- ``logit_bias`` is added to the logits; +100 on a word makes the output that word repeated.
  Tokens that are not space words start at ``-30`` and are only candidates when biased;
- there is no end-of-sequence token: generation runs to ``max_tokens`` unless a stop string
  ends it, so ``finish_reason`` is ``"length"`` or ``"stop"``;
- a prompt with a non-ASCII character is the one exception to "only space words": the model
  first says the prompt's first word that holds one, with a leading space, token by token
  from the tokenizer (so ``" 東京"`` is the space and six UTF-8 byte tokens), and then walks
  on as usual. An all-ASCII prompt never triggers it, so no such prompt's output changed when
  it was added; it gives the stream probes characters whose bytes span several tokens.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import json
import math
import random
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# Appending is safe; inserting or reordering changes every id after the change.
WORDS = (
    "alpha", "amber", "anchor", "apple", "arch", "autumn", "bell", "bench", "birch", "bird",
    "blue", "boat", "bread", "bridge", "bright", "brook", "candle", "canvas", "castle", "cedar",
    "chalk", "clay", "cliff", "cloud", "coast", "copper", "coral", "cotton", "crane", "creek",
    "crystal", "dawn", "deep", "desert", "dune", "dust", "eagle", "east", "echo", "ember",
    "evening", "fable", "falcon", "feather", "fern", "field", "fire", "flame", "flint", "forest",
    "fountain", "garden", "gate", "glass", "glow", "golden", "granite", "grass", "green", "grove",
    "gull", "harbour", "harvest", "hazel", "heath", "hill", "hollow", "honey", "horizon", "ink",
    "iron", "island", "ivory", "ivy", "jade", "journey", "juniper", "kettle", "lake", "lamp",
    "lantern", "lark", "leaf", "ledger", "light", "lily", "linen", "lisbon", "maple", "marble",
    "market", "meadow", "mill", "mist", "moon", "morning", "moss", "mountain", "north", "oak",
    "ocean", "olive", "orchard", "owl", "paper", "path", "pearl", "pebble", "pine", "plain",
    "pond", "quarry", "quiet", "rain", "raven", "reed", "ridge", "river", "road", "robin",
    "rose", "rust", "sail", "salt", "sand", "shadow", "shore", "silver", "sky", "slate",
    "snow", "south", "spring", "square", "star", "stone", "storm", "stream", "summer", "sun",
    "swallow", "thistle", "thunder", "tide", "timber", "tower", "trail", "valley", "velvet",
    "village", "violet", "wave", "west", "wheat", "willow", "wind", "window", "winter", "wolf",
    "wood", "wool", "yarrow", "zephyr", "again", "and", "at", "boats", "clock", "count",
    "describe", "hall", "hour", "in", "is", "keeper", "lighthouse", "log", "night", "noon",
    "old", "struck", "that", "the", "weather", "what", "wrote", "city", "assistant", "user",
    "system", "function", "tool", "developer", "of", "to", "on", "with", "under",
    "over", "near", "through", "beyond", "slowly", "softly", "early", "late", "still", "warm",
    "cold", "small", "great", "long", "wide", "high", "low", "far", "new", "first", "last",
)  # fmt: skip

PUNCTUATION = ('{"', '": "', '", "', '"}', '":', ", ", ". ", "\n\n")

BYTE_BASE = 0x80


def _build_vocab() -> tuple[str, ...]:
    tokens = [*SPECIALS, *(" " + word for word in WORDS), *WORDS, *PUNCTUATION]
    tokens += [chr(code) for code in range(BYTE_BASE)]
    tokens += [f"<0x{byte:02X}>" for byte in range(BYTE_BASE, 256)]
    return tuple(tokens)


#: Every token's text; byte tokens are shown as ``<0xNN>`` but decode to their byte.
VOCAB: tuple[str, ...] = _build_vocab()
VOCAB_SIZE = len(VOCAB)
ENDOFTEXT, IM_START, IM_END = 0, 1, 2
#: The generated vocabulary: ids of the words with a leading space.
SPACE_WORD_IDS: range = range(len(SPECIALS), len(SPECIALS) + len(WORDS))
FIRST_BYTE_ID = VOCAB_SIZE - (256 - BYTE_BASE)

#: Token text -> id, for every token matched by text (byte tokens are not).
_INDEX: dict[str, int] = {text: i for i, text in enumerate(VOCAB[:FIRST_BYTE_ID])}
_MAX_LEN = max(len(text) for text in _INDEX)

TOPIC_SIZE = 12
TOPIC_LOGIT = 10.0
TOPIC_SPREAD = 3.0
OTHER_SPREAD = 4.0
#: Base logit of tokens that are not space words; they are candidates only when biased.
UNBIASED_FLOOR = -30.0
#: OpenAI's default when a request gives no max_tokens to a model without EOS.
DEFAULT_MAX_TOKENS = 16
#: The logit of the next token of a prompt's non-ASCII word while the model is saying it:
#: above every word's logit, so greedy decoding says the whole word.
ECHO_LOGIT = TOPIC_LOGIT + TOPIC_SPREAD + 1.0

# Import-time checks of the tables above: both would silently change what clients see.
if len(set(VOCAB)) != VOCAB_SIZE:
    raise RuntimeError("vocabulary entries must be distinct")
if 100 not in SPACE_WORD_IDS or 200 not in SPACE_WORD_IDS:
    raise RuntimeError("token ids 100 and 200 must be space words (the suite biases them)")


def is_special(token: int) -> bool:
    """True for the chat-template tokens, which are never generated."""
    return 0 <= token < len(SPECIALS)


def token_bytes(token: int) -> bytes:
    """The bytes token ``token`` stands for."""
    if token >= FIRST_BYTE_ID:
        return bytes([BYTE_BASE + token - FIRST_BYTE_ID])
    return VOCAB[token].encode("utf-8")


def tokenize(text: str) -> list[int]:
    """Token ids of ``text``: longest vocabulary match first, UTF-8 bytes for anything else."""
    ids: list[int] = []
    position = 0
    while position < len(text):
        for length in range(min(_MAX_LEN, len(text) - position), 0, -1):
            token = _INDEX.get(text[position : position + length])
            if token is not None:
                ids.append(token)
                position += length
                break
        else:
            # Outside ASCII and the word list: one token per UTF-8 byte.
            encoded = text[position].encode("utf-8", errors="surrogatepass")
            ids.extend(FIRST_BYTE_ID + byte - BYTE_BASE for byte in encoded)
            position += 1
    return ids


def detokenize(ids: Sequence[int]) -> str:
    """The text of ``ids``; byte sequences that are not valid UTF-8 become U+FFFD."""
    return b"".join(token_bytes(token) for token in ids).decode("utf-8", errors="replace")


def count_tokens(text: str) -> int:
    """The number of tokens in ``text``."""
    return len(tokenize(text))


def message_text(content: Any) -> str:
    """The text a message's content carries: the string, or its text parts joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # Content parts: only text parts carry anything the toy model reads.
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


def render_chat(
    messages: Sequence[Mapping[str, Any]],
    functions: Sequence[Mapping[str, Any]] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The prompt text of a chat request: a ChatML-like template, ending in the assistant turn.

    When ``functions`` are given (and honoured) they are rendered first as a system turn, so
    they count as prompt tokens, as they do at OpenAI. The functions of ``tools`` follow as
    signatures only (``get_weather(unit)``): whole definitions in this character-level
    tokenizer would fill a small context window by themselves.
    """
    parts: list[str] = []
    if functions:
        listed = json.dumps(list(functions), sort_keys=True)
        parts.append(f"<|im_start|>system\nfunctions: {listed}<|im_end|>\n")
    if tools:
        signatures = ", ".join(_signature(function) for function in tools)
        parts.append(f"<|im_start|>system\ntools: {signatures}<|im_end|>\n")
    for message in messages:
        text = message_text(message.get("content"))
        for key in ("function_call", "tool_calls"):
            if message.get(key) is not None:
                text += json.dumps(message[key], sort_keys=True)
        parts.append(f"<|im_start|>{message.get('role', 'user')}\n{text}<|im_end|>\n")
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def _signature(function: Mapping[str, Any]) -> str:
    parameters = function.get("parameters")
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    names = ", ".join(str(name) for name in properties) if isinstance(properties, dict) else ""
    return f"{function.get('name')}({names})"


@dataclass(frozen=True)
class Sampling:
    """The request options that shape one generation."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    stop: tuple[str, ...] = ()
    #: False: the text ends before the stop string (OpenAI); True: it ends with it.
    keep_stop: bool = False
    #: Jitter (``jitter.py``): greedy decoding takes the runner-up at this token position
    #: when it nearly ties the best; None for the deterministic output.
    diverge_from: int | None = None


@dataclass(frozen=True)
class Generation:
    """One generated completion."""

    #: Every generated token, including the one that completed a stop match.
    tokens: tuple[int, ...]
    #: The returned text.
    text: str
    #: Stream deltas, at most one per token; they concatenate to ``text``.
    pieces: tuple[str, ...]
    finish_reason: Literal["stop", "length"]
    #: Sum of the chosen tokens' log-probabilities (at temperature 1, after penalties and bias).
    logprob: float

    @property
    def mean_logprob(self) -> float:
        """Log-probability per token, how best_of ranks candidates."""
        return self.logprob / len(self.tokens) if self.tokens else 0.0


def prompt_key(prompt: Sequence[int]) -> str:
    """A stable hash of a prompt's token ids, the seed of everything the model does with it."""
    return hashlib.sha256(json.dumps(list(prompt)).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1024)
def _topic(key: str) -> frozenset[int]:
    chooser = random.Random(f"topic:{key}")
    return frozenset(chooser.sample(SPACE_WORD_IDS, TOPIC_SIZE))


@functools.lru_cache(maxsize=8192)
def _word_logits(key: str, before: int, previous: int) -> tuple[float, ...]:
    # str seeds go through SHA-512 in random.Random: stable across runs and PYTHONHASHSEED.
    draw = random.Random(f"step:{key}:{before}:{previous}")
    topic = _topic(key)
    return tuple(
        TOPIC_LOGIT + TOPIC_SPREAD * draw.random()
        if token in topic
        else OTHER_SPREAD * draw.random()
        for token in SPACE_WORD_IDS
    )


@functools.lru_cache(maxsize=1024)
def echo_word(prompt: tuple[int, ...]) -> tuple[int, ...]:
    """The tokens of the word a prompt with non-ASCII text makes the model say first.

    That is the prompt's first whitespace-separated word holding a non-ASCII character,
    without surrounding ASCII punctuation, after a space; () for an all-ASCII prompt.
    """
    text = detokenize(prompt)
    for special in SPECIALS:
        text = text.replace(special, " ")  # a template token is no part of a word
    for spaced in text.split():
        word = spaced.strip(string.punctuation)
        if not word.isascii():
            return tuple(tokenize(" " + word))
    return ()


def logits(
    prompt: Sequence[int],
    generated: Sequence[int],
    sampling: Sampling,
) -> dict[int, float]:
    """The candidate tokens' logits for the next token, after penalties and logit_bias."""
    key = prompt_key(prompt)
    context = [-1, -1, *prompt, *generated]
    base = _word_logits(key, context[-2], context[-1])
    row = dict(zip(SPACE_WORD_IDS, base, strict=True))
    echo = echo_word(tuple(prompt))
    if len(generated) < len(echo) and tuple(generated) == echo[: len(generated)]:
        # Still saying the prompt's non-ASCII word: its next token comes first.
        row[echo[len(generated)]] = ECHO_LOGIT
    for token, bias in sampling.logit_bias.items():
        if is_special(token) or not 0 <= token < VOCAB_SIZE:
            continue
        row[token] = row.get(token, UNBIASED_FLOOR) + bias
    for token, count in Counter(generated).items():
        if token in row:
            row[token] -= count * sampling.frequency_penalty + sampling.presence_penalty
    return row


def _log_softmax(row: Mapping[int, float], token: int) -> float:
    top = max(row.values())
    total = sum(math.exp(value - top) for value in row.values())
    return row[token] - top - math.log(total)


def _sample(row: Mapping[int, float], sampling: Sampling, rng: random.Random) -> int:
    if sampling.temperature <= 0:
        # Greedy; max() keeps the first of equal logits, and row order is by id.
        return max(row, key=lambda token: row[token])
    top = max(row.values())
    weights = {t: math.exp((v - top) / sampling.temperature) for t, v in row.items()}
    total = sum(weights.values())
    ranked = sorted(weights.items(), key=lambda item: -item[1])
    kept: list[tuple[int, float]] = []
    mass = 0.0
    for token, weight in ranked:
        kept.append((token, weight))
        mass += weight / total
        if mass >= sampling.top_p:
            break
    pick = rng.random() * sum(weight for _, weight in kept)
    for token, weight in kept:
        pick -= weight
        if pick <= 0:
            return token
    return kept[-1][0]


#: Two candidates whose logits are closer than this are a near-tie that jitter may flip
#: (a topic word's lead over the next; never a logit_bias of +100).
NEAR_TIE = 3.0


def _runner_up(row: Mapping[int, float]) -> int | None:
    """The second-best token of ``row`` when it nearly ties the best, else None."""
    ranked = sorted(row, key=lambda token: -row[token])
    if len(ranked) < 2 or row[ranked[0]] - row[ranked[1]] >= NEAR_TIE:
        return None
    return ranked[1]


def _rng(prompt: Sequence[int], sampling: Sampling, candidate: int) -> random.Random:
    if sampling.seed is None:
        return random.Random()  # seeded from the OS: unseeded sampling is not reproducible
    return random.Random(f"sample:{sampling.seed}:{candidate}:{prompt_key(prompt)}")


def _find_stop(text: str, stops: Sequence[str], keep: bool) -> int | None:
    """Where the returned text ends if a stop string occurs in ``text``."""
    matches = [(text.find(stop), -len(stop)) for stop in stops if stop and stop in text]
    if not matches:
        return None
    start, negative_length = min(matches)
    return start - negative_length if keep else start


def generate(prompt: Sequence[int], sampling: Sampling, *, candidate: int = 0) -> Generation:
    """Generate one completion of ``prompt``; ``candidate`` tells n / best_of samples apart."""
    rng = _rng(prompt, sampling, candidate)
    tokens: list[int] = []
    logprob = 0.0
    data = b""
    cut: int | None = None
    diverge_at = sampling.diverge_from if sampling.temperature <= 0 else None
    for position in range(max(sampling.max_tokens, 0)):
        row = logits(prompt, tokens, sampling)
        token = _sample(row, sampling, rng)
        flipped = _runner_up(row) if position == diverge_at else None
        if flipped is not None:
            token = flipped
        logprob += _log_softmax(row, token)
        tokens.append(token)
        if sampling.stop:
            data += token_bytes(token)
            cut = _find_stop(
                data.decode("utf-8", errors="replace"), sampling.stop, sampling.keep_stop
            )
            if cut is not None:
                break
    full = detokenize(tokens)
    text = full if cut is None else full[:cut]
    return Generation(
        tokens=tuple(tokens),
        text=text,
        pieces=stream_pieces(tokens, len(text)),
        finish_reason="stop" if cut is not None else "length",
        logprob=logprob,
    )


def stream_pieces(tokens: Sequence[int], limit: int | None = None) -> tuple[str, ...]:
    """One text delta per token (empty ones dropped), cut so they join to ``limit`` characters.

    An incremental decoder holds back an incomplete UTF-8 sequence until its last byte, so
    the pieces always join to ``detokenize(tokens)``.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pieces: list[str] = []
    length = 0
    for index, token in enumerate(tokens):
        piece = decoder.decode(token_bytes(token), final=index == len(tokens) - 1)
        if limit is not None:
            piece = piece[: max(limit - length, 0)]
        if piece:
            pieces.append(piece)
            length += len(piece)
    return tuple(pieces)


def json_object_text(prompt: Sequence[int]) -> str:
    """A JSON object for JSON mode, made of the two words the model says greedily first
    (``{"harbour": "bright"}``)."""
    first, second = (
        detokenize([token]).strip()
        for token in generate(prompt, Sampling(max_tokens=2, temperature=0)).tokens
    )
    return json.dumps({first: second})


def function_arguments(prompt: Sequence[int], parameters: Mapping[str, Any] | None) -> str:
    """JSON arguments for a forced function call, filled in from the prompt deterministically.

    Each property of the JSON-schema ``parameters`` gets a value of its type: strings are
    words the model says greedily for the prompt (``{"city": "harbour"}``).
    """
    properties = (parameters or {}).get("properties")
    if not isinstance(properties, dict):
        properties = {}
    words = iter(
        detokenize([token]).strip()
        for token in generate(prompt, Sampling(max_tokens=len(properties), temperature=0)).tokens
    )
    arguments: dict[str, Any] = {}
    for name, schema in properties.items():
        kind = schema.get("type") if isinstance(schema, dict) else None
        word = next(words, "value")
        if isinstance(schema, dict) and isinstance(schema.get("enum"), list) and schema["enum"]:
            arguments[str(name)] = schema["enum"][0]
        elif kind in ("integer", "number"):
            arguments[str(name)] = len(word)
        elif kind == "boolean":
            arguments[str(name)] = True
        elif kind == "array":
            arguments[str(name)] = [word]
        elif kind == "object":
            arguments[str(name)] = {}
        else:
            arguments[str(name)] = word
    return json.dumps(arguments)


def token_pieces(text: str) -> tuple[str, ...]:
    """``text`` as a server sends it that decodes every token on its own: one piece per token
    of ``tokenize(text)``, a token holding part of a character decoded as U+FFFD."""
    return tuple(token_bytes(token).decode("utf-8", errors="replace") for token in tokenize(text))
