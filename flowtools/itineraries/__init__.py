"""Itineraries: a trajectory as a sequence of visits to critical sets, ending in an attractor or not.

The run is first resolved (`resolve_trajectory`): wherever two saved states are too far apart in function
space, log-time or log‖∇L‖, the segment between them is re-solved from the saved state with the run's own
dynamics, so that the passages found do not depend on the save grid or on t1. The slow passages of the
resolved run (local minima of ‖∇L‖ over log-time, the first state included: a run started near a critical
set begins with a visit to it) are refined by a Newton-type solve of ∇L = 0 with fallbacks. A passage
whose refinement converges to a critical point that the run came close to (in function space, during the
slow passage) is a visit to that critical set; otherwise it is a "slow_region" visit, labelled with the
local Hessian signature. A visit's window [t_in, t_out] is the stretch of states around the passage whose
network function stays within `visit_radius` (`function_distance`) of the visited one, starting where the
run first enters that radius after the previous visit.

The terminal state is "attractor" only when the run ends next to a critical set with no negative Hessian
eigenvalue beyond tolerance and it is really approaching it (converged, or, for degenerate minima that
are approached algebraically, loss and distance both still decreasing onto a refined critical point
whose loss the run has essentially reached, or, for a non-isolated minimum set with a kernel along it,
moving onto a refined point of the set however slowly); "diverged" for diverged or non-finite runs; otherwise
"unfinished". A slow passage is never called an attractor. An unfinished run ends in an explicit
"unfinished" visit at its last state, so its path keeps its edges in the saddle graph.

Visits of one critical set are one node wherever on the set the refinement lands: identity is the
network function (fingerprint, invariant under neuron symmetries), never the signature, which varies
along a degenerate set or a plateau manifold; unrefined slow regions also share n_neg (see
docs/itineraries.md for the rule and its tolerances). A visit whose Hessian spectrum cannot be computed
is kept, with the reason (`Visit.reason`).

The package splits by concept: `_records` (`Visit`, `Itinerary`), `_refinement` (a point refined to a
critical set and its visit record), `_passages` (visit windows, merging, the drift and noise of SGD runs),
`_terminal` (how a run ends), `_itinerary` (`itinerary`, which runs these stages) and `_graph` (the saddle
graph of runs).
"""

from ._records import (
    TERMINALS as TERMINALS,
    Visit as Visit,
    Itinerary as Itinerary,
    problem_loss_label as problem_loss_label,
)
from ._passages import (
    NOISE_WINDOW as NOISE_WINDOW,
    drift as drift,
    function_noise_scale as function_noise_scale,
)
from ._itinerary import (
    itinerary as itinerary,
    auto_time_limits as auto_time_limits,
)
from ._graph import (
    add_to_graph as add_to_graph,
    refinement_share as refinement_share,
    saddle_graph as saddle_graph,
)

__all__ = ["Visit", "Itinerary", "itinerary", "add_to_graph", "refinement_share", "saddle_graph", "auto_time_limits",
           "function_noise_scale", "drift"]
