"""Load a policy: a Hugging Face hub id or local path, or a tiny model built from a config.

Tiny models exist so the loop runs (and is tested) with no download: a real architecture
(Qwen2, GPT-2, Llama) with a few layers and a character-level tokenizer built locally. They
are saved to disk once, and from then on loaded through the same `from_pretrained` path as a
real model.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from policies.atomic import atomic_dir
from policies.model_config import ModelConfig, TinyModelConfig

SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "<eos>", "unk_token": "<unk>"}


def char_tokenizer() -> PreTrainedTokenizerFast:
    """One token per printable ASCII character (and newline, tab), plus pad/eos/unk."""
    chars = sorted(set(string.printable) - set("\r\x0b\x0c"))
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS.values(), *chars])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")  # any char, newlines too
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)


def tiny_model(cfg: TinyModelConfig, tokenizer, seed: int):
    """A randomly initialized causal LM of a real architecture, sized by `cfg`."""
    common = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    if cfg.arch == "gpt2":
        config = AutoConfig.for_model(
            "gpt2", n_layer=cfg.num_layers, n_embd=cfg.hidden_size, n_head=cfg.num_heads,
            n_inner=cfg.intermediate_size, n_positions=cfg.max_position_embeddings,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common,
        )
    else:
        config = AutoConfig.for_model(
            cfg.arch, num_hidden_layers=cfg.num_layers, hidden_size=cfg.hidden_size,
            num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
            intermediate_size=cfg.intermediate_size, max_position_embeddings=cfg.max_position_embeddings,
            tie_word_embeddings=True, **common,
        )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)


def build_tiny(cfg: ModelConfig, seed: int, out_dir: Path) -> Path:
    """Build the tiny model and its tokenizer and save them to `out_dir` (atomically)."""
    tokenizer = char_tokenizer()
    model = tiny_model(cfg.tiny, tokenizer, seed)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out_dir


def load_tokenizer(name_or_path: str | Path):
    """AutoTokenizer, except that a declared generic fast tokenizer is taken as declared.

    transformers 5 maps a model type to its tokenizer class (Qwen2Tokenizer, ...), which rebuilds
    the pre-tokenizer and would silently drop our char tokenizer's spaces and newlines.
    """
    config_file = Path(name_or_path) / "tokenizer_config.json"
    if config_file.exists():
        declared = json.loads(config_file.read_text()).get("tokenizer_class")
        if declared in ("TokenizersBackend", "PreTrainedTokenizerFast"):
            return PreTrainedTokenizerFast.from_pretrained(str(name_or_path))
    tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name_or_path: str | Path, dtype: str = "float32", device: str | None = None):
    """A causal LM for generation, in eval mode, on `device` (default: CUDA when present)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=torch_dtype)
    return model.to(device).eval()
