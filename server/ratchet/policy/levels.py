"""The autonomy ladder: blocked < draft < confirm < autonomous."""

from __future__ import annotations

from enum import IntEnum


class Level(IntEnum):
    """A class's standing autonomy. Ordered: a higher value is more autonomy."""

    BLOCKED = 0
    DRAFT = 1
    CONFIRM = 2
    AUTONOMOUS = 3

    def __bool__(self) -> bool:
        """Always True: a level is never "absent".

        As an IntEnum, BLOCKED would be 0 and so falsy, and `level or default` / `if level:` would
        silently turn a human's `pin CLASS blocked` into "no pin". Compare with `is None` for an
        optional level; this guard makes the mistake harmless if it is made anyway.
        """
        return True

    @property
    def label(self) -> str:
        """The lower-case name used in policy files, the database and every output."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | Level) -> Level:
        """Read a level from its policy spelling; ValueError names the valid spellings."""
        if isinstance(value, Level):
            return value
        try:
            return cls[value.strip().upper()]
        except KeyError:
            valid = ", ".join(level.label for level in cls)
            raise ValueError(f"unknown level {value!r}; expected one of: {valid}") from None

    def up(self) -> Level:
        """One rung up (saturating)."""
        return Level(min(self + 1, Level.AUTONOMOUS))

    def down(self) -> Level:
        """One rung down (saturating)."""
        return Level(max(self - 1, Level.BLOCKED))


LEVEL_NAMES = tuple(level.label for level in Level)
