"""arena-vllm: LLM decisions for Agent Arena agents, served by vLLM."""

__version__ = "0.1.0"
