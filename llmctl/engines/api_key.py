"""How a replica's engine is handed its API key so that it never appears on a command line (process
listings) or in a log: the launch script writes the key to a file only its user can read, in the replica's
run directory, and the engine reads it from there. Pure.

vLLM reads the key from the VLLM_API_KEY environment variable (vllm.envs; `--api-key` wins when given) and
guards the /v1 routes with it. SGLang has no such variable; it reads a YAML file of its flags given by
`--config` (docs/advanced_features/server_arguments.md), so the file is that YAML and the flag points at it.
SGLang's guard covers every route but /health and /metrics, so the controller sends the key too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

VLLM_KEY_ENV = "VLLM_API_KEY"
# The file's name in the replica's run directory (the engine's working directory), per flavour: SGLang's
# config reader wants a YAML file name.
KEY_FILES = ("key", "key.yaml")


@dataclass(frozen=True)
class KeyDelivery:
    file: str  # in the replica's run directory
    env: str | None  # variable the launch shell sets from the file's contents
    argv: tuple[str, ...]  # arguments added to the engine's command line
    yaml: bool  # the file is a YAML mapping of flags rather than the bare key

    def file_text(self, key: str) -> str:
        # JSON is YAML, and quotes the key whatever it holds.
        return f"api-key: {json.dumps(key)}\n" if self.yaml else key


def delivery(flavour: str) -> KeyDelivery:
    """For the engine flavour (the emulated engine takes its key the way the engine it emulates does)."""
    if flavour == "sglang":
        return KeyDelivery(KEY_FILES[1], None, ("--config", KEY_FILES[1]), yaml=True)
    return KeyDelivery(KEY_FILES[0], VLLM_KEY_ENV, (), yaml=False)


def auth_headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}
