"""The agent service: Agent Arena's HTTP protocol, every decision made by the LLM through the backend.

Modules, one job each: ``schemas`` (the wire format, with ``bounds`` for its numbers),
``game_tools`` (one registry entry per tool: its schema for this agent, the model's arguments ->
the game's, the game's check, its words), ``actions`` (the scene's tools through the registry),
``fallback`` (the SDK-order decision when the model fails), ``prompt`` (observation -> user
prompt), ``policy`` (concurrent decisions with a deadline), ``experiences`` (recent events per
agent), ``guard`` (request limits), ``recorder``/``traces``/``debug`` (the ``/debug`` inspector),
``metrics`` (Prometheus), ``app`` (FastAPI routes) and ``__main__`` (``python -m arena_vllm.agent``).
"""
