"""The stop codes of the critical-point solvers (`find_critical_point`): one vocabulary for the jitted
Levenberg–Marquardt loops and Newton–MINRES, and the `CriticalPoint.status` name of each.
"""

RUNNING, CONVERGED, MAX_ITER, LEFT_RADIUS, STALLED, NON_FINITE, SLOW = -1, 0, 1, 2, 3, 4, 5
CODE_NAMES = {CONVERGED: "converged", MAX_ITER: "max_iter", LEFT_RADIUS: "left_radius",
              STALLED: "stalled", NON_FINITE: "non_finite", SLOW: "slow"}
