"""arena-vllm operations: ``python -m ops <command>`` (up, doctor, download, base-images)."""
