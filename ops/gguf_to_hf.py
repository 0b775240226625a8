"""Turn a llama-architecture GGUF (SmolLM2-135M-Instruct's) into a Hugging Face folder vLLM serves.

Standalone on purpose: ``ops/real_model.py`` runs it inside the vLLM CPU image (torch,
transformers, tokenizers and gguf are there; nothing is downloaded). It avoids transformers'
own GGUF loader, whose behaviour moves between versions (4.x: eos ``<|im_start|>``, a BOS
prepended though the GGUF says ``add_bos_token`` false, a ``tokenizer.model`` that is a copy
of the whole GGUF; 5.x: needs accelerate). Instead, from the GGUF's own fields:

- weights: ``gguf.quants.dequantize`` of every tensor, Q and K rows un-permuted (llama.cpp
  permutes them for its rotary layout), loaded into ``LlamaForCausalLM`` and saved as safetensors;
- tokenizer: a byte-level BPE rebuilt from the GGUF's tokens and merges with llama.cpp's
  ``smollm`` pre-tokenizer (digits split one by one), the control tokens as specials, eos and
  pad ``<|im_end|>``, no BOS added, and the GGUF's ChatML template kept as it is.

Example::

    python3 gguf_to_hf.py SmolLM2-135M-Instruct.Q4_1.gguf /out/smollm2 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: GGUF token types (gguf.TokenType): CONTROL tokens become special tokens.
CONTROL = 3
#: GGUF tensor name parts -> Hugging Face Llama parameter names.
LAYER_TENSORS = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
TOP_TENSORS = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def fields(reader: Any) -> dict[str, Any]:
    """Every key/value field of the GGUF as Python values."""
    return {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}


def hf_name(gguf_name: str) -> str:
    """``blk.3.attn_q.weight`` -> ``model.layers.3.self_attn.q_proj.weight``."""
    stem, _, kind = gguf_name.rpartition(".")
    if stem.startswith("blk."):
        _, layer, part = stem.split(".", 2)
        return f"model.layers.{layer}.{LAYER_TENSORS[part]}.{kind}"
    return f"{TOP_TENSORS[stem]}.{kind}"


def unpermute(weight: Any, heads: int) -> Any:
    """Undo llama.cpp's ``LlamaModel.permute`` of Q/K rows (convert_hf_to_gguf.py), as
    transformers' ``reverse_permute_weights`` (modeling_gguf_pytorch_utils.py) does."""
    rows = weight.shape[0]
    return weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:]).swapaxes(2, 1).reshape(weight.shape)


def state_dict(reader: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """Dequantized float32 tensors under Hugging Face names."""
    import numpy as np
    import torch
    from gguf.quants import dequantize

    heads, kv_heads = meta["llama.attention.head_count"], meta["llama.attention.head_count_kv"]
    tensors = {}
    for tensor in reader.tensors:
        weight = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
        weight = weight.reshape([int(n) for n in reversed(tensor.shape)])  # GGUF lists dims fastest first
        if tensor.name.endswith("attn_q.weight"):
            weight = unpermute(weight, heads)
        elif tensor.name.endswith("attn_k.weight"):
            weight = unpermute(weight, kv_heads)
        tensors[hf_name(tensor.name)] = torch.from_numpy(np.array(weight, copy=True))  # owned and writable
    return tensors


def llama_config(meta: dict[str, Any], tied: bool) -> Any:
    """The Llama config from the GGUF's ``llama.*`` and token-id fields."""
    from transformers import LlamaConfig

    hidden, heads = meta["llama.embedding_length"], meta["llama.attention.head_count"]
    return LlamaConfig(
        vocab_size=meta.get("llama.vocab_size", len(meta["tokenizer.ggml.tokens"])),
        hidden_size=hidden,
        intermediate_size=meta["llama.feed_forward_length"],
        num_hidden_layers=meta["llama.block_count"],
        num_attention_heads=heads,
        num_key_value_heads=meta["llama.attention.head_count_kv"],
        head_dim=meta.get("llama.rope.dimension_count", hidden // heads),
        max_position_embeddings=meta["llama.context_length"],
        rms_norm_eps=float(f"{meta['llama.attention.layer_norm_rms_epsilon']:.6g}"),  # stored as float32
        rope_theta=float(meta["llama.rope.freq_base"]),
        tie_word_embeddings=tied,
        bos_token_id=meta["tokenizer.ggml.bos_token_id"],
        eos_token_id=meta["tokenizer.ggml.eos_token_id"],
        pad_token_id=meta.get("tokenizer.ggml.padding_token_id", meta["tokenizer.ggml.eos_token_id"]),
    )


def save_model(reader: Any, meta: dict[str, Any], out: Path, dtype: str) -> None:
    """Weights as safetensors in ``dtype``, with config.json and generation_config.json."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    tensors = state_dict(reader, meta)
    tied = "lm_head.weight" not in tensors
    config = llama_config(meta, tied)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model.load_state_dict(tensors, strict=not tied, assign=True)
    if tied:
        model.tie_weights()
    model.to(getattr(torch, dtype)).save_pretrained(out)
    GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    ).save_pretrained(out)
    portable_model_config(out / "config.json", float(meta["llama.rope.freq_base"]))


def save_tokenizer(meta: dict[str, Any], out: Path) -> None:
    """A byte-level BPE from the GGUF's vocabulary and merges, with its chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if meta["tokenizer.ggml.model"] != "gpt2" or meta.get("tokenizer.ggml.pre") != "smollm":
        raise SystemExit(
            f"only byte-level BPE with llama.cpp's 'smollm' pre-tokenizer is supported, got "
            f"{meta['tokenizer.ggml.model']!r}/{meta.get('tokenizer.ggml.pre')!r}"
        )
    tokens = meta["tokenizer.ggml.tokens"]
    merges = [tuple(merge.split(" ", 1)) for merge in meta["tokenizer.ggml.merges"]]
    tokenizer = Tokenizer(
        models.BPE(
            vocab={token: i for i, token in enumerate(tokens)}, merges=merges, fuse_unk=False, byte_fallback=False
        )
    )
    # llama.cpp's LLAMA_VOCAB_PRE_TYPE_SMOLLM: "\p{N}" (one digit per piece), then GPT-2's regex.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)  # no BOS: add_bos_token is false
    token_types = meta["tokenizer.ggml.token_type"]
    specials = [token for token, kind in zip(tokens, token_types) if kind == CONTROL]

    def token(key: str) -> str:
        return tokens[meta[key]]

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=token("tokenizer.ggml.bos_token_id"),
        eos_token=token("tokenizer.ggml.eos_token_id"),
        pad_token=token("tokenizer.ggml.padding_token_id"),
        unk_token=token("tokenizer.ggml.unknown_token_id"),
        model_max_length=meta["llama.context_length"],
        clean_up_tokenization_spaces=False,
    )
    named = {fast.bos_token, fast.eos_token, fast.pad_token, fast.unk_token}
    additional = [t for t in specials if t not in named]
    fast.add_special_tokens({"additional_special_tokens": additional})  # already in the vocab: ids kept
    fast.chat_template = meta["tokenizer.chat_template"]
    fast.save_pretrained(out)
    portable_tokenizer_config(out / "tokenizer_config.json", fast.chat_template, additional)


def portable_tokenizer_config(path: Path, chat_template: str, additional: list[str]) -> None:
    """A tokenizer_config.json that transformers 4.x and 5.x read alike (the image may have either):
    the class by its 4.x name, the extra specials under their 4.x key (5.x writes a list where
    4.x expects a dict), the template inline, and the GGUF's no-BOS, no-EOS."""
    config = json.loads(path.read_text())
    config.pop("extra_special_tokens", None)
    config.update(
        tokenizer_class="PreTrainedTokenizerFast",
        add_bos_token=False,
        add_eos_token=False,
        additional_special_tokens=additional,
        chat_template=chat_template,
    )
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def portable_model_config(path: Path, rope_theta: float) -> None:
    """config.json with ``rope_theta`` at the top too: transformers 4.x and vLLM's older readers
    ignore 5.x's ``rope_parameters`` and would fall back to 10000."""
    config = json.loads(path.read_text())
    config["rope_theta"] = rope_theta
    path.write_text(json.dumps(config, indent=2) + "\n")


def convert(gguf_path: Path, out: Path, dtype: str) -> None:
    """Write the model and tokenizer; every file world-readable (the server runs as another uid)."""
    from gguf import GGUFReader

    reader = GGUFReader(gguf_path)
    meta = fields(reader)
    if meta["general.architecture"] != "llama":
        raise SystemExit(f"only llama-architecture GGUFs are supported, got {meta['general.architecture']!r}")
    out.mkdir(parents=True, exist_ok=True)
    save_tokenizer(meta, out)
    save_model(reader, meta, out, dtype)
    for path in out.iterdir():
        path.chmod(0o644)
    out.chmod(0o755)
    print(
        f"{meta.get('general.name', gguf_path.name)} ({meta.get('general.license', '?')}) written to {out} as {dtype}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gguf", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    args = parser.parse_args()
    convert(args.gguf, args.out, args.dtype)


if __name__ == "__main__":
    main()
