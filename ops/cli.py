"""The one command-line tool for running the stack: ``arena-vllm <command> --help`` (or ``python -m ops``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arena_vllm.config import ConfigError
from ops import base_images, doctor, download, export, plan, profiles, real_model, replicas, up
from ops.compose import OpsError


def _base_images(args: argparse.Namespace) -> None:
    tag = base_images.build_python_base(force=args.force, mirror=args.mirror)
    print(f"export PYTHON_BASE={tag}   # for docker compose build")


def _profiles(args: argparse.Namespace) -> None:
    print(profiles.profiles_table())


def build_parser() -> argparse.ArgumentParser:
    prog = "arena-vllm" if Path(sys.argv[0]).name == "arena-vllm" else "python -m ops"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    images = commands.add_parser("base-images", help="build local stand-ins for the base images (no registry)")
    images.add_argument("--force", action="store_true", help="rebuild even if present")
    images.add_argument("--mirror", default=base_images.DEBIAN_MIRROR, help="Debian mirror for debootstrap")
    images.set_defaults(func=_base_images)
    table = commands.add_parser("profiles", help="print the hardware profiles as a table (from configs/profile)")
    table.set_defaults(func=_profiles)
    for command in (doctor, up, download, real_model, replicas, export, plan):
        command.register(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except (OpsError, ConfigError) as exc:
        sys.exit(f"{args.command}: {exc}")
