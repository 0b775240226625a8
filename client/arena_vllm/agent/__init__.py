"""The agent service: Agent Arena's HTTP protocol, every decision made by the LLM through the backend.

Modules, one job each: ``schemas`` (the wire format), ``prompt`` (observation -> user prompt),
``policy`` (concurrent decisions with a deadline), ``metrics`` (Prometheus), ``app`` (FastAPI
routes) and ``__main__`` (``python -m arena_vllm.agent``).
"""
