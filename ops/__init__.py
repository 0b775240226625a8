"""arena-vllm operations: ``python -m ops <command>`` (see ``ops/cli.py``: up/down, doctor, download, plan,
profiles, export, replicas, model, base-images); the vLLM engine setup lives in :mod:`ops.engine`."""
