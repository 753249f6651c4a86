"""``NAME=FIELD:VALUE,...``: a named set of changes to `nas.config.TrainConfig`, as the
benchmarks that compare trainings take them (``--recipe``, ``--proxy``)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import fields
from typing import Any

from nas.config import TrainConfig


def parse_changes(text: str, flag: str, extra: Collection[str] = ()
                  ) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The name, the `TrainConfig` changes typed as their fields' defaults (booleans ``true``
    or ``false``), and the ``extra`` keys' values as written. A missing name, an unknown field
    or a bad value is a ValueError that names ``flag`` and the item."""
    name, sep, changes = text.partition("=")
    if not sep or not name:
        raise ValueError(f"{flag} {text!r}: expected NAME=FIELD:VALUE,...")
    defaults = TrainConfig()
    kinds = {f.name: type(getattr(defaults, f.name)) for f in fields(TrainConfig)}
    kinds["train_threads"] = int  # its default, None, says nothing of its type
    parsed: dict[str, Any] = {}
    extras: dict[str, str] = {}
    for item in filter(None, changes.split(",")):
        key, _, value = item.partition(":")
        try:
            if key in extra:
                extras[key] = value
            elif key not in kinds:
                raise ValueError("not a TrainConfig field" + "".join(f", nor {k}" for k in extra))
            elif kinds[key] is bool:
                if value not in ("true", "false"):
                    raise ValueError("true or false")
                parsed[key] = value == "true"
            else:
                parsed[key] = kinds[key](value)
        except ValueError as exc:
            raise ValueError(f"{flag} {text!r}: {key}:{value} ({exc})") from None
    return name, parsed, extras
