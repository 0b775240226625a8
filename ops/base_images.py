"""Build local stand-ins for the Dockerfiles' base images where no registry can be reached.

The Dockerfiles keep their real ``FROM`` defaults (``python:3.11-slim-bookworm``); on an
air-gapped or registry-less machine this module makes an equivalent image from Debian
packages (``debootstrap`` + ``docker import``) and the build passes it as ``PYTHON_BASE``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ops.errors import OpsError

#: Tag of the local stand-in for ``python:3.11-slim-bookworm``.
LOCAL_PYTHON_BASE = "arena-local/python:3.11-bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
#: Python 3.11 (the interpreter the official slim image carries), venv, and TLS roots.
PACKAGES = ["python3", "python3-venv", "ca-certificates"]


def image_exists(tag: str) -> bool:
    """True when the local engine already has ``tag`` (no registry is asked)."""
    try:
        return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0
    except FileNotFoundError:
        raise OpsError(
            "docker is not installed (no `docker` on PATH): install Docker Engine, then run this again"
        ) from None


def build_python_base(tag: str = LOCAL_PYTHON_BASE, mirror: str = DEBIAN_MIRROR, force: bool = False) -> str:
    """Debootstrap a minimal Debian with Python 3.11 and import it as ``tag``."""
    if image_exists(tag) and not force:
        print(f"base-images: {tag} already present (use --force to rebuild)")
        return tag
    if shutil.which("debootstrap") is None:
        raise OpsError("debootstrap is missing; install it with `apt-get install debootstrap`")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="arena-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        print(f"base-images: debootstrap {DEBIAN_SUITE} from {mirror} (a few minutes) ...", flush=True)
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", DEBIAN_SUITE, str(rootfs), mirror],
            stdout=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise OpsError(
                f"debootstrap exited {done.returncode} (its errors are above); check the mirror "
                f"({mirror}, --mirror URL) and that this runs as root"
            )
        # The official image has `python` on PATH; scripts and HEALTHCHECKs rely on it.
        (rootfs / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True)
        print(f"base-images: importing as {tag} ...", flush=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "--change", 'CMD ["python3"]', "--change", "ENV LANG=C.UTF-8", "-", tag],
            stdin=tar.stdout,
            stdout=subprocess.DEVNULL,
        )
        if tar.wait() != 0:
            raise OpsError("tar of the root filesystem failed (its error is above); check free space in /tmp")
        if imported.returncode != 0:
            raise OpsError(f"docker import exited {imported.returncode} (its error is above); check `docker info`")
    print(f"base-images: {tag} built in {time.monotonic() - started:.0f} s")
    return tag
