"""`llmctl provision` (being built)."""

from __future__ import annotations


def provision_command() -> None:
    """Provision hosts for a playbook."""
    raise NotImplementedError
