"""The policy's `[reviewer]` table: the delegated reviewer's command, its adapter, timeout and authority bars.

```toml
[reviewer]
adapter = "claude"          # "command" (any argv), "claude" (Claude Code headless) or "codex" (codex exec)
command = ["claude"]        # the argv; for "claude" and "codex" the executable (default: the adapter's name)
timeout_s = 60              # past this the reviewer is killed and its verdict is "unsure"
threshold = 0.10            # authority: the false-accept rate's upper 95% bound must be below this...
min_samples = 40            # ...over at least this many approvals beside a person's answer
min_agreement = 0.85        # ...and the lower 95% bound of its agreement with the person at least this
audit_share = 0.1           # of the calls it approves with authority, this share still goes to the person
authority = true            # false: shadow only (verdicts recorded beside people's, never deciding)
```

Validated when the policy loads, like every table: an unknown key or a bad value is a PolicyError naming
the file and the key, and nothing is served (fail closed: no reviewer authority). Without the table there is
no reviewer. A class keeps the reviewer away with `reviewer = false` (rules/reviewer.py `eligible`).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

ADAPTERS = ("command", "claude", "codex")


class ReviewerSpec(BaseModel):
    """The `[reviewer]` table as written (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter: Literal["command", "claude", "codex"] = "command"
    command: list[str] | None = None
    model: str | None = None
    timeout_s: float = Field(60.0, gt=0, le=3600)
    threshold: float = Field(0.10, gt=0, lt=1)
    min_samples: int = Field(40, ge=1, le=100_000)
    min_agreement: float = Field(0.85, ge=0, le=1)
    audit_share: float = Field(0.1, ge=0, le=1)
    authority: bool = True

    @model_validator(mode="after")
    def _command(self) -> Self:
        if self.adapter == "command" and not self.command:
            raise ValueError(
                'adapter "command" needs command, an argv list such as ["python3", "review.py"] that reads one '
                "review request as JSON on stdin and writes one verdict as JSON on stdout"
            )
        if self.command is not None and (not self.command or not all(part for part in self.command)):
            raise ValueError("command is a non-empty argv list of non-empty strings")
        return self

    @property
    def argv0(self) -> list[str]:
        """The executable (and any fixed arguments) the adapter starts."""
        return list(self.command) if self.command else [self.adapter]
