"""The one error tree of ops: every failure a user can fix is an :class:`OpsError` whose message says
what failed and what to do next; the CLI prints it as one line (``ops/cli.py``), the container's
entrypoint too (``ops/run_vllm_server.py``). Nothing below those two mains calls ``sys.exit``.

    OpsError
     '-- EngineError          the engine package (ops/engine): starting vLLM on this machine
          |-- PlanError        a model config or setting the planner cannot use
          |-- ModelConfigMissing   no config.json to plan from (not a folder, not cached, not shipped, not fetched)
          '-- ProfileRefused   no profile starts in the memory free now (names what holds it and the fix)

A secret file that cannot be read is a config error (:func:`arena_vllm.config.read_secret_file`, the
one reader of secret files), which both mains print as one line too.
"""

from __future__ import annotations


class OpsError(RuntimeError):
    """A failure of an ops command; the message says what failed and what to do next."""


class EngineError(OpsError):
    """Starting vLLM here cannot go on: GPU, profile, model config, memory or secrets."""


class PlanError(EngineError, ValueError):
    """A model config or setting the planner cannot use; the message names the key and the fix."""


class ModelConfigMissing(PlanError):
    """No config.json for the model anywhere we may look; the message lists where was looked."""


class ProfileRefused(EngineError):
    """The profile (or, for ``auto``, every GPU profile) cannot start in the VRAM free now."""
