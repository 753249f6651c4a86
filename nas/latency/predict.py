"""One code path from an architecture to its predicted latency on a table's target."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from nas.arch import Arch
from nas.latency.calibrate import Calibration
from nas.latency.layers import Layer, arch_layers
from nas.latency.measure import Timing
from nas.latency.table import LatencyTable, TableError


@dataclass(frozen=True)
class Prediction:
    latency_ms: float
    error_ms: float  # one-sigma uncertainty: calibration error and measurement spread combined
    raw_sum_ms: float  # the uncalibrated sum of layer timings


# The interquartile range of a normal distribution is 1.349 sigma.
_IQR_TO_SIGMA = 1 / 1.349


class LatencyModel:
    """Predicts latency from the table alone; layers missing from the table are an error."""

    def __init__(self, table: LatencyTable, in_channels: int, num_classes: int) -> None:
        self.table, self.in_channels, self.num_classes = table, in_channels, num_classes

    @property
    def calibration(self) -> Calibration:
        return self.table.calibration or Calibration()

    def layers(self, arch: Arch) -> list[Layer]:
        return arch_layers(arch, self.table.target.input_size, self.in_channels, self.num_classes)

    def group_sums(self, arch: Arch) -> dict[str, float]:
        return _sum_by_group(self._timed(arch))

    def predict(self, arch: Arch) -> Prediction:
        timed = self._timed(arch)
        sums = _sum_by_group(timed)
        calibration = self.calibration
        latency = calibration.apply(sums)
        spread_var = sum((calibration.scales.get(l.group, 1.0) * t.spread_ms * _IQR_TO_SIGMA) ** 2
                         for l, t in timed)
        error = math.sqrt((calibration.rel_rmse * latency) ** 2 + spread_var)
        return Prediction(latency_ms=latency, error_ms=error, raw_sum_ms=sum(sums.values()))

    def _timed(self, arch: Arch) -> list[tuple[Layer, Timing]]:
        return [(layer, self._timing(layer)) for layer in self.layers(arch)]

    def _timing(self, layer: Layer) -> Timing:
        try:
            return self.table.entries[layer.key]
        except KeyError:
            raise TableError(f"layer {layer.key} is not in the latency table of "
                             f"{self.table.space!r}; profile the space again with "
                             "'python -m nas profile'") from None


def _sum_by_group(timed: list[tuple[Layer, Timing]]) -> dict[str, float]:
    sums: dict[str, float] = defaultdict(float)
    for layer, timing in timed:
        sums[layer.group] += timing.median_ms
    return dict(sums)
