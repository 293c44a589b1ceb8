"""What a command line's analysis finds (`CommandAnalysis`), and the accumulator the rules fill in."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_DEPTH = 8


@dataclass(frozen=True)
class CommandAnalysis:
    """Every simple command that would execute; `opaque` when that cannot be known."""

    commands: list[list[str]]
    opaque: bool
    reasons: list[str]
    redirects: list[str] = field(default_factory=list)  # files written by shell redirection
    writes: list[str] = field(default_factory=list)  # files written by options and operands (rule 12)
    human_cli: bool = False  # runs Ratchet's own CLI, the human's tool (rule 16)


@dataclass
class Acc:
    workspace: str | None = None
    commands: list[list[str]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    redirects: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    expanding: set[str] = field(default_factory=set)  # shell words the shell would expand (rule 15)
    fed: str = ""  # "xargs" or "find" while analysing a command that gets arguments from them
    human_cli: bool = False
    opaque: bool = False

    def dark(self, reason: str) -> None:
        self.opaque = True
        self.reasons.append(reason)

    def result(self) -> CommandAnalysis:
        return CommandAnalysis(self.commands, self.opaque, self.reasons, self.redirects, self.writes, self.human_cli)

    def write(self, path: str, how: str, word: str) -> None:
        """`path` is written (rule 12); a value the shell would expand is no path we can name (rule 15)."""
        if word in self.expanding or path in self.expanding:
            self.dark(f"{how} writes {path!r}, which the shell expands: not a literal path")
        else:
            self.writes.append(path)
            self.reasons.append(f"{how} writes {path}")
