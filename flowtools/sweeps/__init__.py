"""Sweeps: one task over many configurations, on Dask distributed, into a labelled, resumable store.

A sweep runs a task function on each configuration (a dict of scalars with its own `seed`) and keeps
every finished point. The store is a directory:

- `points/<index>.json`: one record per finished point (its configuration, seed, package version,
  scalar outcomes, itinerary and saddle graph), written atomically as the point finishes. The records
  are the ground truth: a point is finished exactly when its record exists.
- `results.zarr`: the xarray Dataset of all points (dimension `point`, the configuration as
  coordinates, scalar outcomes as variables, visits along a second dimension `visit`), rebuilt from the
  records while the sweep runs and at its end. It is written into a new directory and then swapped in
  by replacing a symbolic link, so a reader never sees a half-written store.
- `graph.json`: one `SaddleGraph` merged over all finished points (node-link JSON).
- `sweep.json`: the task and the list of configurations, so a rerun checks it continues the same sweep.

A rerun with `resume=True` skips finished points. Killing the driver, or a worker (`kill -9`), loses
at most the points in flight: records are whole or absent, and one point has one record. A lock file
keeps two drivers from writing to one store.

Workers are Dask worker processes (a `LocalCluster` by default, or any scheduler address). Each gets
one XLA thread (`XLA_FLAGS`; XLA ignores `OMP_NUM_THREADS`), float64, and JAX's persistent compilation
cache, set inside the worker because spawned processes do not inherit `jax.config`. With `workers=0`
the points run serially in this process and Dask is not imported.

The package splits by concept: `_grid` (configurations), `_worker` (worker set-up), `_tasks` (the built-in
tasks and their lookup by name), `_parameters` (declared parameters), `_store` (the point records),
`_results` (the Dataset, the merged graph, `SweepResult`) and `_driver` (`sweep`, `run_point`).
"""

from ._driver import (
    ERROR as ERROR,
    FAILED as FAILED,
    TIMING_OUTCOMES as TIMING_OUTCOMES,
    run_point as run_point,
    sweep as sweep,
)
from ._grid import grid as grid
from ._parameters import (
    check_configurations as check_configurations,
    ConfigError as ConfigError,
    CriticalPointsParameters as CriticalPointsParameters,
    EscapeParameters as EscapeParameters,
    FlowItineraryParameters as FlowItineraryParameters,
    GDItineraryParameters as GDItineraryParameters,
    ProblemParameters as ProblemParameters,
)
from ._results import (
    merge_stores as merge_stores,
    merged_graph as merged_graph,
    open_results as open_results,
    point_groups as point_groups,
    PointGroup as PointGroup,
    read_store as read_store,
    StoreContents as StoreContents,
    SweepResult as SweepResult,
)
from ._store import (
    check_store as check_store,
    DamagedRecordWarning as DamagedRecordWarning,
    load_record as load_record,
    SCHEMA as SCHEMA,
)
from ._tasks import (
    critical_points as critical_points,
    escape_times as escape_times,
    flow_itinerary as flow_itinerary,
    gd_itinerary as gd_itinerary,
    initial_theta as initial_theta,
    make_problem as make_problem,
    TASKS as TASKS,
)
from ._tasks import escape_times as escape  # the task "escape" under its former name
from ._worker import (
    configure_worker as configure_worker,
    pin_to_cpu as pin_to_cpu,
    worker_environment as worker_environment,
    XLA_SINGLE_THREAD as XLA_SINGLE_THREAD,
)

__all__ = [
    "sweep", "grid", "SweepResult", "open_results", "load_record", "merged_graph", "merge_stores", "TASKS",
    "flow_itinerary", "gd_itinerary", "critical_points", "escape", "escape_times", "make_problem",
    "initial_theta", "configure_worker", "worker_environment", "pin_to_cpu", "TIMING_OUTCOMES", "SCHEMA",
    "check_configurations", "ConfigError", "check_store", "DamagedRecordWarning", "FAILED", "ERROR",
    "ProblemParameters", "FlowItineraryParameters", "GDItineraryParameters", "CriticalPointsParameters",
    "EscapeParameters", "read_store", "StoreContents", "run_point", "XLA_SINGLE_THREAD", "point_groups",
    "PointGroup",
]
