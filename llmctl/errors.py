"""The one exception family users see. Every user-facing failure is an LlmctlError with a message that
names what went wrong and where (file:line field, or host and command); the CLI prints it without a traceback."""

from __future__ import annotations


class LlmctlError(Exception):
    """A failure caused by input or environment, explained in words; never a bug."""

    exit_code = 2


class ConfigError(LlmctlError):
    """Invalid inventory, playbook or scenario. Carries the file, line and field path for the message."""

    def __init__(self, file: str, line: int | None, field: str, problem: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.problem = problem
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")


class ConfigErrors(LlmctlError):
    """Several ConfigErrors from one file, reported together so users fix them in one pass."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class PlanError(LlmctlError):
    """A deployment that cannot be planned: does not fit in memory, cannot be placed, invalid flags."""
