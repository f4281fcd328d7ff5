"""Saddle escape, one concept per module: distances to a center (`_distances`), escape times and the
linearized prediction (`_times`), plateaus of a learning curve (`_plateaus`), basin fractions (`_basins`),
scaling-law fits (`_fits`), bottleneck networks (`_bottleneck`) and a flow that stops on escape (`_flow`).
"""

from ._distances import distances as distances
from ._times import (
    EscapeTime as EscapeTime,
    escape_time as escape_time,
    linearized_escape_time as linearized_escape_time,
    EscapeDistribution as EscapeDistribution,
    escape_time_distribution as escape_time_distribution,
)
from ._plateaus import (
    Plateau as Plateau,
    plateau_length as plateau_length,
    plateaus as plateaus,
)
from ._basins import (
    Basin as Basin,
    BasinFractions as BasinFractions,
    basin_fractions as basin_fractions,
    wilson_interval as wilson_interval,
)
from ._fits import (
    ScalingFit as ScalingFit,
    fit_power_law as fit_power_law,
    fit_log_law as fit_log_law,
)
from ._bottleneck import (
    bottleneck_layers as bottleneck_layers,
    bottleneck_init as bottleneck_init,
    bottleneck_saddle as bottleneck_saddle,
)
from ._flow import (
    EscapeRun as EscapeRun,
    escape_flow as escape_flow,
)

__all__ = [
    "EscapeTime",
    "escape_time",
    "distances",
    "linearized_escape_time",
    "EscapeDistribution",
    "escape_time_distribution",
    "Plateau",
    "plateau_length",
    "plateaus",
    "Basin",
    "BasinFractions",
    "basin_fractions",
    "wilson_interval",
    "ScalingFit",
    "fit_power_law",
    "fit_log_law",
    "bottleneck_layers",
    "bottleneck_init",
    "bottleneck_saddle",
    "EscapeRun",
    "escape_flow",
]
