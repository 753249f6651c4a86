"""The latency lookup table: one JSON file per (target, space), measured on demand, resumable.

File layout (schema 4)::

    {"schema": 4, "space": "mobilenetv3-large",
     "target": {...Target fields...}, "fingerprint": "3f9a0c1b2d4e",
     "entries": {"ir_k3_e4_c24_s2_re@112x112x16": {"median_ms": .., "spread_ms": .., "count": ..}},
     "calibration": {"intercept_ms": .., "scales": {"ir@56": ..}, "rel_rmse": .., "fitted_on": ..},
     "validation": {"count": .., "within_5": .., "within_10": .., "mape": .., "max_error": ..,
                    "spearman": ..},
     "speed_probe": {"median_ms": .., "spread_ms": .., "count": ..}}

``validation`` scores the calibrated table on whole networks it was not fitted on, timed in the
same rounds as the calibration networks, as is ``speed_probe`` (`nas.bundle_timer.speed_probe`,
absent from tables built before it existed).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nas.arch import ArchError
from nas.atomic import write_text
from nas.errors import UserError
from nas.latency.calibrate import Calibration
from nas.latency.layers import Layer
from nas.latency.measure import Timing
from nas.latency.target import Target
from nas.latency.validate import Agreement

# 2: round-robin timings (count = rounds); 3: steady-state allocator; 4: the allocator is a
# field of the target (and of its fingerprint)
SCHEMA_VERSION = 4


class TableError(UserError):
    """A table file that cannot be used; the message names the file and what to do."""


@dataclass
class LatencyTable:
    """Timings of layers on one target, and the file that holds them. Mutable: profiling
    (`nas.latency.profile`) adds entries; `save` writes them."""

    target: Target
    space: str
    entries: dict[str, Timing] = field(default_factory=dict)
    calibration: Calibration | None = None
    validation: Agreement | None = None  # the calibrated table on held-out networks
    # `nas.bundle_timer.speed_probe`, timed in the calibration's rounds: the machine's speed then
    speed_probe: Timing | None = None

    def missing(self, layers: Iterable[Layer]) -> list[Layer]:
        """Layers with no timing yet, each once, in first-seen order."""
        seen: dict[str, Layer] = {}
        for layer in layers:
            if layer.key not in self.entries and layer.key not in seen:
                seen[layer.key] = layer
        return list(seen.values())

    def identity(self) -> str:
        """12 hex digits naming what a run's latencies come from: the target and the fit of the
        table (its calibration, validation and speed probe). Profiling only ever adds layers, so
        a table that gained layers since keeps its identity; a rebuilt one gets another."""
        made = {k: v for k, v in self.to_dict().items() if k not in ("entries", "space")}
        return hashlib.sha256(json.dumps(made, sort_keys=True).encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, object]:
        return {"schema": SCHEMA_VERSION, "space": self.space, "target": asdict(self.target),
                "fingerprint": self.target.fingerprint(),
                "entries": {k: t.to_dict() for k, t in sorted(self.entries.items())},
                "calibration": None if self.calibration is None else self.calibration.to_dict(),
                "validation": None if self.validation is None else self.validation.to_dict(),
                "speed_probe": None if self.speed_probe is None else self.speed_probe.to_dict()}

    def save(self, path: Path) -> None:
        """Write atomically, so an interrupted build never leaves a truncated file."""
        write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path, *, space: str | None = None) -> LatencyTable:
        """Read and check a table; ``space`` (a space name) refuses tables of another space."""
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise TableError(f"cannot read latency table {path}: {exc.strerror}") from exc
        except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8, a number too long
            raise TableError(f"{path}: corrupt or truncated latency table ({exc}); delete it "
                             "to rebuild, or pass another --lut") from exc
        if not isinstance(data, dict) or "schema" not in data:
            raise TableError(f"{path}: not a latency table (no schema version)")
        if data["schema"] != SCHEMA_VERSION:
            raise TableError(f"{path}: latency table schema {data['schema']!r}, this version reads "
                             f"schema {SCHEMA_VERSION}; delete it and rebuild it on its target "
                             "with 'python -m nas profile'")
        try:
            target = Target(**data["target"])
            entries = {str(k): _timing(v) for k, v in data["entries"].items()}
            probe = None if data.get("speed_probe") is None else _timing(data["speed_probe"])
            for key in entries:
                Layer.from_key(key)
            calibration = (None if data.get("calibration") is None
                           else Calibration.from_dict(data["calibration"]))
            validation = (None if data.get("validation") is None
                          else Agreement.from_dict(data["validation"]))
            table_space = str(data["space"])
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, ArchError) as exc:
            raise TableError(f"{path}: malformed latency table ({exc.__class__.__name__}: {exc}); "
                             "rebuild it with 'python -m nas profile'") from exc
        if not _usable([*entries.values(), *([probe] if probe else [])], calibration):
            raise TableError(f"{path}: a timing or calibration factor is negative, infinite or "
                             "NaN; the file was edited or damaged, rebuild it")
        if data.get("fingerprint") != target.fingerprint():
            raise TableError(f"{path}: fingerprint does not match its target fields; the file "
                             "was edited or damaged, rebuild it")
        if space is not None and table_space != space:
            raise TableError(f"{path}: latency table is for space {table_space!r}, not {space!r}; "
                             "profile this space or pass its own --lut")
        return cls(target=target, space=table_space, entries=entries, calibration=calibration,
                   validation=validation, speed_probe=probe)


def _timing(data: dict[str, object]) -> Timing:
    return Timing(float(data["median_ms"]), float(data["spread_ms"]),  # type: ignore[arg-type]
                  int(data["count"]))  # type: ignore[call-overload]


def _usable(timings: Iterable[Timing], calibration: Calibration | None) -> bool:
    """Whether every number a prediction is made of is finite, and every timing >= 0."""
    numbers = [x for t in timings for x in (t.median_ms, t.spread_ms)]
    if any(x < 0 for x in numbers):
        return False
    if calibration is not None:
        numbers += [calibration.intercept_ms, calibration.rel_rmse, *calibration.scales.values()]
    return all(math.isfinite(x) for x in numbers)


def file_hash(path: Path) -> str:
    """SHA-256 (first 12 hex digits) of a table file: what a report cites as its source."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def default_path(results_dir: Path, space: str, target: Target) -> Path:
    return results_dir / "luts" / f"{space}-{target.backend}-{target.fingerprint()}.json"
