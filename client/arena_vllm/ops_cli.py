"""``arena-vllm``: the console script ``pip install -e 'client[ops]'`` installs; it runs the checkout's ops CLI.

The ops package lives beside ``client/`` (it drives the checkout's compose files, Dockerfiles
and configs), not inside the installed package, so this finds it next to the editable
install and loads it by location: no ``sys.path`` edit, and ``arena-vllm up`` works from any
directory.

Example::

    arena-vllm doctor
    arena-vllm up --cpu
"""

from __future__ import annotations

import importlib.util
import sys

from arena_vllm.config import CHECKOUT


def main() -> None:
    """Run ``ops.cli.main`` from this checkout; one line saying how to install when there is none."""
    package = CHECKOUT / "ops" / "__init__.py"
    if not package.is_file():
        sys.exit(
            f"arena-vllm: no ops/ package in {CHECKOUT}; the ops CLI runs from a checkout: "
            "git clone the repository, then pip install -e 'client[ops]'"
        )
    if "ops" not in sys.modules:
        spec = importlib.util.spec_from_file_location("ops", package, submodule_search_locations=[str(package.parent)])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["ops"] = module
        spec.loader.exec_module(module)
    from ops.cli import main as ops_main

    ops_main()
