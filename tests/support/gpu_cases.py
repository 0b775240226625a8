"""What vLLM logged for the GPU profiles (random weights in the real shapes; vLLM 0.26 on an H100 whose
CUDA total is 79.18 GiB), for the planner's tests; and config.json shapes of the profiles' models.

Idle card: issue #9's table. With 1.5 GiB held by another process: the device run of 2026-11-25
(`.devicework/measure.sh`, see README "GPU profiles, measured"), the entrypoint having lowered the util.
"""

from __future__ import annotations

H100_CUDA_TOTAL_GIB = 79.18

QWEN25_15B = dict(
    hidden_size=1536,
    intermediate_size=8960,
    num_hidden_layers=28,
    num_attention_heads=12,
    num_key_value_heads=2,
    vocab_size=151936,
    tie_word_embeddings=True,
    torch_dtype="bfloat16",
    max_position_embeddings=32768,
)
QWEN25_7B = dict(
    hidden_size=3584,
    intermediate_size=18944,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    vocab_size=152064,
    tie_word_embeddings=False,
    torch_dtype="bfloat16",
    max_position_embeddings=32768,
)
QWEN25_7B_AWQ = dict(
    QWEN25_7B,
    torch_dtype="float16",
    quantization_config={"bits": 4, "group_size": 128, "quant_method": "awq", "zero_point": True},
)
#: The profiles' models (configs/profile/*.yaml) -> their config.json shape.
PROFILE_MODELS = {
    "Qwen/Qwen2.5-1.5B-Instruct": QWEN25_15B,
    "Qwen/Qwen2.5-7B-Instruct": QWEN25_7B,
    "Qwen/Qwen2.5-7B-Instruct-AWQ": QWEN25_7B_AWQ,
}

#: (case, profile, config, util passed to vLLM, vLLM's "Model loading took" GiB, logged KV tokens)
MEASURED = [
    ("gpu-8gb idle", "gpu-8gb", QWEN25_15B, 0.090354, 2.98, 127_008),
    ("gpu-24gb idle", "gpu-24gb", QWEN25_7B, 0.277086, 14.29, 117_952),
    ("gpu-16gb idle", "gpu-16gb", QWEN25_7B_AWQ, 0.180753, 5.38, 142_048),
    ("gpu-8gb, 1.5 GiB held", "gpu-8gb", QWEN25_15B, 0.0716, 2.98, 71_392),
    ("gpu-16gb, 1.5 GiB held", "gpu-16gb", QWEN25_7B_AWQ, 0.1721, 5.38, 129_216),
    ("gpu-24gb, 1.5 GiB held", "gpu-24gb", QWEN25_7B, 0.2724, 14.29, 111_008),
    # second device run, this branch's final entrypoint (CUDA total from nvidia-smi's memory.reserved)
    ("gpu-8gb, 1.5 GiB held, final", "gpu-8gb", QWEN25_15B, 0.0721, 2.98, 72_880),
    ("gpu-16gb, 1.5 GiB held, final", "gpu-16gb", QWEN25_7B_AWQ, 0.1731, 5.38, 130_688),
    ("gpu-24gb, 1.5 GiB held, final", "gpu-24gb", QWEN25_7B, 0.274, 14.29, 113_376),
]

#: config.json of the stack tests' tiny model (tests/support/make_tiny_model.py; vocabulary from its tokenizer).
TINY_CONFIG = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    vocab_size=2052,
    tie_word_embeddings=True,
    dtype="bfloat16",
    max_position_embeddings=4096,
)
