"""The CLI's layout: each command lives in a module of `ratchet.cli` with its arguments beside it, and
the parser registers every one of them (a command written but not listed would silently not exist)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable

import ratchet.cli
from ratchet.cli.common import Handler
from ratchet.cli.parser import COMMANDS, GROUPS, Parser, build_parser

HELPERS = {"add_filters", "add_period", "add_batch"}  # shared argument groups, not commands


def _adders() -> dict[str, object]:
    found = {}
    for info in pkgutil.iter_modules(ratchet.cli.__path__):
        if info.name == "__main__":  # runs the CLI when imported
            continue
        module = importlib.import_module(f"ratchet.cli.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("add_") and name not in HELPERS and fn.__module__ == module.__name__:
                found[f"{info.name}.{name}"] = fn
    return found


def test_every_command_module_is_registered_once() -> None:
    adders = _adders()
    registered = list(COMMANDS)
    assert len(set(registered)) == len(registered), "a command is listed twice in COMMANDS"
    missing = sorted(name for name, fn in adders.items() if fn not in registered)
    assert missing == [], f"commands defined but not in cli/parser.py's COMMANDS: {missing}"


def _registered() -> dict[str, tuple[Callable[..., object], Callable[..., object]]]:
    """Command name -> (its handler, the function that declared its arguments), by running each entry of
    COMMANDS against a recording `add`."""
    seen: dict[str, tuple[Callable[..., object], Callable[..., object]]] = {}
    for adder in COMMANDS:

        def add(name: str, handler: Handler, *, adder: Callable[..., object] = adder, **_: object) -> Parser:
            assert name not in seen, f"{name} registered twice"
            seen[name] = (handler, adder)
            return Parser(add_help=False)

        adder(add)
    return seen


def test_each_command_is_in_a_help_group_and_its_handler_lives_beside_its_arguments() -> None:
    registered = _registered()
    grouped = {name for names in GROUPS.values() for name in names}
    assert sorted(set(registered) - grouped) == [], "a command `ratchet --help` would list under `other`"
    assert sorted(grouped - set(registered)) == [], "GROUPS names a command that does not exist"
    for name, (handler, adder) in registered.items():
        assert adder.__module__ == handler.__module__, f"{name}: arguments in {adder.__module__}, code elsewhere"
        assert adder.__name__ == "add_" + name.replace("-", "_"), name
    assert len(registered) == len(COMMANDS)
    build_parser()  # and the real parser accepts them all
