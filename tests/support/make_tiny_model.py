"""Make a tiny random-weight chat model with tool support, offline, for the stack tests.

Nothing is downloaded: a Qwen2 config with two small layers, a byte-level BPE tokenizer
trained on the spot, and a Qwen/Hermes chat template that renders tools and
``<tool_call>`` blocks (vLLM's hermes parser needs those tokens in the vocabulary).
Its text is gibberish; with strict tools and a forced ``tool_choice`` vLLM's structured
output still yields schema-valid calls, which is what the tests check.

Runs where torch, transformers and tokenizers are installed (the vLLM CPU image)::

    python make_tiny_model.py /out/tiny-model
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TOOL_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]

CHAT_TEMPLATE = """
{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}# Tools

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'user' or (message.role == 'assistant' and not message.tool_calls) %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% elif message.role == 'assistant' %}<|im_start|>assistant
{%- for call in message.tool_calls %}
<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments if call.function.arguments is string else call.function.arguments | tojson }}}
</tool_call>
{%- endfor %}<|im_end|>
{% elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}
""".strip()

CORPUS = [
    '{"name": "move_to", "arguments": {"target_position": [1.5, 0.0, -3.25], "speed": 1.0}}',
    '{"name": "collect", "arguments": {"target_name": "berry_bush_3"}}',
    '{"name": "idle", "arguments": {}}',
    "You control one agent in a 3D foraging arena. Move, collect nearby resources, avoid hazards.",
    "position tick health energy inventory resources hazards stations distance objective",
    "0123456789 -+.,:;[]{}\"' abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ _",
]


def sample_calls(count: int = 400) -> list[str]:
    """Tool calls with varied numbers and names, so that BPE learns JSON and digit merges:
    with single-character tokens a move_to call runs past 128 tokens."""
    import random

    rng = random.Random(0)
    calls = []
    for _ in range(count):
        position = [round(rng.uniform(-100, 100), rng.choice([0, 1, 2, 6])) for _ in range(3)]
        calls.append(
            json.dumps(
                {"name": "move_to", "arguments": {"target_position": position, "speed": round(rng.uniform(0.1, 2), 3)}}
            )
        )
        name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_") for _ in range(rng.randint(3, 32)))
        calls.append(json.dumps({"name": "collect", "arguments": {"target_name": name}}))
    return [f"<tool_call>\n{call}\n</tool_call>" for call in calls]


def make_tokenizer(out: Path) -> int:
    """Train a byte-level BPE on a small corpus and save it with the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2048,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte can be produced
    )
    tokenizer.train_from_iterator(CORPUS * 20 + sample_calls(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[],
    )
    fast.add_tokens(TOOL_TOKENS)  # ordinary (non-special) added tokens, as in Qwen2.5
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return len(fast)


def make_model(out: Path, vocab_size: int, eos_id: int, pad_id: int) -> None:
    """A two-layer Qwen2 with head_dim 64 (a size vLLM's CPU attention supports)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id).save_pretrained(out)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = make_tokenizer(out)
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    make_model(out, vocab_size, eos_id=vocab["<|im_end|>"], pad_id=vocab["<|endoftext|>"])
    for path in out.iterdir():
        path.chmod(0o644)  # safetensors are written 0600; the server runs as another uid
    print(f"tiny model with {vocab_size} tokens written to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
