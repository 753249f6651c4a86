"""Command-line flags generated from config dataclasses, so a default and its help live once.

A field becomes a flag when its metadata holds `flag(...)`: the flag's name is the field's
(``train_samples`` -> ``--train-samples``) unless given, its default is the field's default and its
help the text given here. `from_args` builds the config back from the parsed arguments.
The type functions turn a bad value into argparse's one-line error (exit 2).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, Field, dataclass, fields
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class FlagSpec:
    help: str
    name: str | None = None  # default: the field's name with dashes
    aliases: tuple[str, ...] = ()
    type: Callable[[str], Any] | None = None
    choices: tuple[Any, ...] | None = None


def flag(help: str, *, name: str | None = None, aliases: tuple[str, ...] = (),
         type: Callable[[str], Any] | None = None,
         choices: tuple[Any, ...] | None = None) -> Mapping[str, FlagSpec]:
    """Field metadata that makes the field a command-line flag."""
    return {"flag": FlagSpec(help, name, aliases, type, choices)}


def _flag_fields(cls: type) -> list[tuple[Field[Any], FlagSpec]]:
    return [(f, f.metadata["flag"]) for f in fields(cls) if "flag" in f.metadata]


def add_flags(parser: argparse.ArgumentParser, cls: type, *, exclude: Iterable[str] = (),
              defaults: Mapping[str, Any] | None = None) -> None:
    """Add a flag for every flagged field of ``cls`` (``defaults`` overrides, e.g. None for 'the
    space's'); a field without a default becomes a required flag."""
    defaults = defaults or {}
    for f, spec in _flag_fields(cls):
        if f.name in exclude:
            continue
        required = f.default is MISSING and f.name not in defaults
        default = defaults.get(f.name, None if f.default is MISSING else f.default)
        help_text = (spec.help if required or default is None
                     else f"{spec.help} (default: {default})")
        help_text = help_text.replace("%", "%%")  # argparse formats help with %
        parser.add_argument(spec.name or "--" + f.name.replace("_", "-"), *spec.aliases,
                            dest=f.name, default=default, required=required, help=help_text,
                            type=spec.type, choices=spec.choices)


def from_args(cls: Callable[..., T], args: argparse.Namespace, **overrides: Any) -> T:
    """The config ``cls`` from the parsed flags of its fields, then ``overrides``."""
    values = {f.name: getattr(args, f.name) for f, _ in _flag_fields(cls)  # type: ignore[arg-type]
              if hasattr(args, f.name)}
    return cls(**{**values, **overrides})


# --- type functions ---------------------------------------------------------------------------

def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def percent(text: str) -> float:
    """``10%`` or ``10`` (percent) to the fraction 0.1; refuses negative or non-finite ones."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage such as 10%, got {text!r}") \
            from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a percentage of 0% or more, got {text!r}")
    return value / 100


def float_list(text: str) -> tuple[float, ...]:
    """``0.25,1`` to (0.25, 1.0); ``none`` (or nothing) to ()."""
    if text.strip().lower() in ("", "none"):
        return ()
    return tuple(positive_float(item) for item in text.split(","))


_BUDGET = re.compile(r"\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(ms|s)?\s*", re.IGNORECASE)


def budget_ms(text: str) -> float:
    """``20ms``, ``0.02s`` or ``20`` (ms) to milliseconds; refuses non-positive, non-finite or
    unparsable budgets."""
    m = _BUDGET.fullmatch(text)
    if m is None:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive time such as 20ms, "
                                         "0.02s or 20 (ms)")
    value = float(m[1]) * (1000.0 if (m[2] or "ms").lower() == "s" else 1.0)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the budget must be a finite time greater "
                                         "than zero")
    return value


def comma_list(choices: Iterable[str], *,
               allow_none: bool = False) -> Callable[[str], tuple[str, ...]]:
    """A type for ``a,b,c`` whose items must be among ``choices`` (``none``: (), where
    ``allow_none``)."""
    allowed = tuple(choices)

    def parse(text: str) -> tuple[str, ...]:
        if allow_none and text.strip().lower() == "none":
            return ()
        items = tuple(i.strip() for i in text.split(",") if i.strip())
        unknown = [i for i in items if i not in allowed]
        if not items or unknown:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(allowed)}"
                                             + (" or none" if allow_none else ""))
        return items

    return parse
