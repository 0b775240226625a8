"""The engine package: what it takes to start vLLM on this machine, before anything is downloaded.

    gpus.py          nvidia-smi, read field by field: each card's memory, the processes holding VRAM
    model_config.py  which model a profile serves and its config.json (folder, HF cache, shipped, hub)
    planner.py       how vLLM splits a card's memory for a model and profile (pure arithmetic)
    fit.py           the one profile -> planner mapping; fit to free memory; what ``auto`` picks
    server.py        the vLLM command line, environment and secret files
    threads.py       thread settings for the vLLM process (no idle spinning on a GPU, all cores on a CPU)
    warmup.py        warm the engine at its seat count before the stack reports ready

The container's entrypoint (ops/run_vllm_server.py) is a thin main over this package; the ops
commands (plan, doctor, up, download) import the package, never the entrypoint. Errors are
:class:`ops.errors.EngineError` subclasses whose message names the fix.
"""
