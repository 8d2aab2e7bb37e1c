"""Unit tests of the tiny model builder: vocabulary, tokenizers, weights, files, determinism."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("numpy")
pytest.importorskip("gguf")
pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")

import gguf
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from conformance.peers import model as model_names
from conformance.peers import tinymodel as tm
from conformance.peers.smoke import TOKEN_COUNT_PROMPTS

sys.path.insert(0, str(Path(__file__).parent))
import _reference as ref

VOCAB = tm.build_vocab()
WEIGHTS = tm.build_weights(VOCAB)
NATO_IDS = [VOCAB.id(tm.SPACE + w) for w in tm.NATO]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> model_names.TinyModel:
    return tm.build(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def hf_tok(built: model_names.TinyModel) -> Tokenizer:
    return Tokenizer.from_file(str(built.hf_dir / "tokenizer.json"))


def spm_tokenize(text: str) -> list[int]:
    """llama.cpp's SPM algorithm: merge the best-scoring adjacent pair until none is a piece."""
    ids = {p: i for i, p in enumerate(VOCAB.pieces)}
    symbols = list(text.replace(" ", tm.SPACE))
    while True:
        best: tuple[float, int] | None = None
        for i in range(len(symbols) - 1):
            merged = symbols[i] + symbols[i + 1]
            if merged in ids and (best is None or VOCAB.scores[ids[merged]] > best[0]):
                best = (VOCAB.scores[ids[merged]], i)
        if best is None:
            break
        i = best[1]
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
    out: list[int] = []
    for sym in symbols:
        if sym in ids:
            out.append(ids[sym])
        else:
            out.extend(ids[f"<0x{b:02X}>"] for b in sym.encode("utf-8"))
    return out


def walk(prompt_ids: list[int], steps: int, **kw: object) -> list[int]:
    return ref.greedy(WEIGHTS, prompt_ids, steps, **kw)  # type: ignore[arg-type]


class TestVocab:
    def test_layout(self) -> None:
        assert 480 <= len(VOCAB.pieces) <= 520
        assert VOCAB.pieces[:5] == ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
        assert VOCAB.pieces[tm.EOS_ID] == "<|im_end|>"
        assert len(set(VOCAB.pieces)) == len(VOCAB.pieces)
        assert [p for p in VOCAB.pieces if p.startswith("<0x")] == [
            f"<0x{b:02X}>" for b in range(256)
        ]

    @pytest.mark.parametrize(("token_id", "word"), [(100, "yes"), (200, "no")])
    def test_bias_ids_are_plain_words(self, token_id: int, word: str) -> None:
        assert VOCAB.pieces[token_id] == tm.SPACE + word
        assert VOCAB.types[token_id] == gguf.TokenType.NORMAL

    def test_every_word_is_reachable_by_merges(self) -> None:
        for piece in VOCAB.pieces:
            if piece.startswith(tm.SPACE) and len(piece) > 1:
                assert piece[:-1] in VOCAB.pieces


class TestTokenizers:
    @pytest.mark.parametrize("text", [*TOKEN_COUNT_PROMPTS.values(), "alpha", "  zulu~ ", "日本"])
    def test_hf_matches_spm(self, hf_tok: Tokenizer, text: str) -> None:
        assert hf_tok.encode(text).ids == spm_tokenize(text)

    @settings(max_examples=200, deadline=None)
    @given(st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyz ~.,é\n"), max_size=40))
    def test_hf_matches_spm_on_any_text(self, text: str) -> None:
        tok = Tokenizer.from_str(tm.hf_tokenizer_json(VOCAB))
        assert tok.encode(text).ids == spm_tokenize(text)

    def test_known_counts(self, hf_tok: Tokenizer) -> None:
        counts = {k: len(hf_tok.encode(v).ids) for k, v in TOKEN_COUNT_PROMPTS.items()}
        assert counts == {"plain": 4, "sentence": 34, "non-ascii": 14}

    def test_decode_round_trip(self, hf_tok: Tokenizer) -> None:
        text = "Say alpha, héllo\n~"
        assert hf_tok.decode(hf_tok.encode(text).ids) == text

    def test_specials_are_parsed(self, hf_tok: Tokenizer) -> None:
        assert hf_tok.encode("<|im_start|>user\nhi").ids[0] == 3


class TestChatTemplate:
    def render(self, messages: list[dict[str, str]]) -> str:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        template = env.from_string(tm.CHAT_TEMPLATE)
        return template.render(messages=messages, add_generation_prompt=True)

    def test_last_message_left_open(self) -> None:
        text = self.render(
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say alpha"}]
        )
        assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nSay alpha"


class TestWeights:
    def test_logit_margins(self) -> None:
        top = np.sort(ref.logits(WEIGHTS, spm_tokenize("Say alpha")))[::-1]
        assert top[0] == pytest.approx(tm.TOP_LOGIT, abs=0.1)
        assert top[0] - top[1] == pytest.approx(tm.RUNNER_UP_GAP, abs=0.1)
        assert top[2] < 1.0
        # llama.cpp's default repeat penalty (divide by 1.1) must not flip the walk.
        assert top[0] / 1.1 > top[1] + 0.2

    def test_walk_is_long_readable_and_cycles(self) -> None:
        out = walk(spm_tokenize("Say alpha"), 60)
        assert tm.EOS_ID not in out
        expected = [NATO_IDS[(1 + i) % 26] for i in range(60)]
        assert out == expected

    def test_letters_start_their_word(self) -> None:
        assert walk(spm_tokenize("Count the times"), 2) == [
            VOCAB.id(tm.SPACE + "sierra"),
            VOCAB.id(tm.SPACE + "tango"),
        ]

    def test_end_trigger(self) -> None:
        assert walk(spm_tokenize("Over and out ~"), 5) == [VOCAB.id(tm.SPACE + "over"), tm.EOS_ID]

    @pytest.mark.parametrize(
        "penalty", [{"frequency_penalty": 2.0}, {"presence_penalty": 2.0}, {"frequency_penalty": 1}]
    )
    def test_penalties_change_the_walk(self, penalty: dict[str, float]) -> None:
        prompt = spm_tokenize("Say alpha")
        plain = walk(prompt, 60)
        changed = walk(prompt, 60, **penalty)
        assert changed != plain
        assert VOCAB.id(tm.SPACE + "roger") in changed

    @pytest.mark.parametrize(("token_id", "word"), [(100, "yes"), (200, "no")])
    def test_logit_bias_dominates(self, token_id: int, word: str) -> None:
        out = walk(spm_tokenize("Hello"), 6, bias={token_id: 100.0})
        assert out == [token_id] * 6


class TestFiles:
    def test_layout_and_manifest(self, built: model_names.TinyModel) -> None:
        assert built.name == "tiny"
        assert built.context_window == 256
        assert built.gguf.name == "tiny.gguf"
        assert built.hf_dir.name == "tiny"
        names = sorted(p.name for p in built.hf_dir.iterdir())
        assert names == [
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "special_tokens_map.json",
            "tokenizer.json",
            "tokenizer_config.json",
        ]
        assert model_names.is_built(built.root)

    def test_hf_config(self, built: model_names.TinyModel) -> None:
        config = json.loads((built.hf_dir / "config.json").read_text())
        assert config["model_type"] == "llama"
        assert config["max_position_embeddings"] == 256
        assert config["vocab_size"] == len(VOCAB.pieces)
        tok_config = json.loads((built.hf_dir / "tokenizer_config.json").read_text())
        assert tok_config["chat_template"] == tm.CHAT_TEMPLATE
        assert tok_config["eos_token"] == "<|im_end|>"
        tensors = load_file(str(built.hf_dir / "model.safetensors"))
        assert set(tensors) == set(WEIGHTS)
        assert all(t.dtype == np.float32 for t in tensors.values())

    def test_gguf_metadata_and_tensors(self, built: model_names.TinyModel) -> None:
        reader = gguf.GGUFReader(built.gguf)

        def scalar(key: str) -> object:
            return reader.fields[key].contents()

        assert scalar("general.architecture") == "llama"
        assert scalar("llama.context_length") == 256
        assert scalar("tokenizer.ggml.add_bos_token") is False
        assert scalar("tokenizer.ggml.add_space_prefix") is False
        assert scalar("tokenizer.ggml.eos_token_id") == tm.EOS_ID
        assert scalar("tokenizer.chat_template") == tm.CHAT_TEMPLATE
        assert scalar("tokenizer.ggml.tokens") == VOCAB.pieces
        tensors = {t.name: np.asarray(t.data) for t in reader.tensors}
        assert np.array_equal(tensors["output.weight"], WEIGHTS["lm_head.weight"])
        q = WEIGHTS["model.layers.0.self_attn.q_proj.weight"]
        assert not np.array_equal(tensors["blk.0.attn_q.weight"], q)  # rows reordered for GGML
        assert sorted(tensors["blk.0.attn_q.weight"].ravel()) == sorted(q.ravel())

    def test_deterministic_bytes(self, tmp_path: Path) -> None:
        def digest(root: Path) -> dict[str, str]:
            return {
                str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*"))
                if p.is_file()
            }

        tm.build(tmp_path / "a")
        tm.build(tmp_path / "b")
        assert digest(tmp_path / "a") == digest(tmp_path / "b")

    def test_idempotent_and_versioned(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        built = tm.build(tmp_path)
        mtime = built.gguf.stat().st_mtime_ns
        tm.build(tmp_path)
        assert built.gguf.stat().st_mtime_ns == mtime  # skipped: already built
        monkeypatch.setattr(model_names, "BUILDER_VERSION", "other")
        assert not model_names.is_built(tmp_path)
        monkeypatch.setattr(tm, "BUILDER_VERSION", "other")
        tm.build(tmp_path)
        assert model_names.is_built(tmp_path)
        assert not list(tmp_path.glob(".build-*"))
