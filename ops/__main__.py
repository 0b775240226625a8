"""``python -m ops``: the ops CLI (``pip install -e 'client[ops]'`` also installs it as ``arena-vllm``)."""

import sys

try:
    from ops.cli import main
except ModuleNotFoundError as exc:
    if (exc.name or "").partition(".")[0] == "ops":
        raise  # a bug in ops itself, not a missing install
    sys.exit(
        f"python -m ops needs the client package and its ops extras ({exc.name} is missing): "
        "pip install -e 'client[ops]'"
    )

main()
