"""The records of an itinerary: `Visit` (one passage of a run near a critical set, or its end) and
`Itinerary` (the visits of one run, in order, and its terminal state), with the name of the loss they are
measured in (`problem_loss_label`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

TERMINALS = ("attractor", "diverged", "unfinished")


@dataclasses.dataclass
class Visit:
    """One passage of a trajectory near a critical set (or through a slow region).

    `status` says how the point was obtained: "converged" (refined to gtol), "near_critical" (the best
    refinement iterate, ‖∇L‖ ≤ `near_gtol`), "flow" (the flow itself continued onto the set),
    "unrefined" (a slow region: every refinement failed), "skipped" (the itinerary's or the
    refinement's time budget ran out before the refinement succeeded),
    "terminal" (the explicit end of an unfinished run), or "kink" (the flow stopped where ∇L jumps, so
    the flow's own end point is the critical point; see `reason`). `ball_radius`: for an attractor of kind
    "noise_ball", the measured radius of the ball (RMS function distance of the run's last states from
    the minimum); 0 otherwise. `morse_complete` is False when the Morse
    index signature[0] is only a lower bound (an incomplete Lanczos count). `t` is the time of the slow point; `radius`
    the function-space radius within which other passages count as the same one (0 for refined
    critical sets, whose identity is exact). `reason` is empty unless the Hessian spectrum could not be
    computed as usual: then it says why, and whether the signature comes from a central-difference
    Hessian of ∇L or is unknown (signature (None, None, None), kind "unclassified"); the visit is kept.
    At the loss floor it says that negative eigenvalues were counted as zero (`loss_floor_spectrum`).
    """

    kind: str
    t_in: float
    t_out: float
    loss: float
    gen_error: float | None
    signature: tuple
    theta: np.ndarray
    grad_norm: float
    reduces_to: str
    fingerprint: np.ndarray
    eigenvalues: np.ndarray
    node: str | None = None
    status: str = "converged"
    t: float | None = None
    radius: float = 0.0
    morse_complete: bool = True
    reason: str = ""
    ball_radius: float = 0.0

    @property
    def dwell(self) -> float:
        return self.t_out - self.t_in

    def to_dict(self) -> dict:
        return dict(node=self.node, kind=self.kind, t_in=self.t_in, t_out=self.t_out, dwell=self.dwell,
                    loss=self.loss, gen_error=self.gen_error, signature=list(self.signature),
                    grad_norm=self.grad_norm, reduces_to=self.reduces_to, status=self.status,
                    reason=self.reason, ball_radius=self.ball_radius, theta=self.theta.tolist())

    @property
    def refined(self) -> bool:
        return self.status in ("converged", "near_critical", "flow", "kink")


@dataclasses.dataclass
class Itinerary:
    """The visits of one run, in order, and how it ended (`terminal`: attractor / diverged /
    unfinished). When `terminal == "attractor"` the last visit is the attractor; when it is
    "unfinished" the last visit is the explicit "unfinished" end (status "terminal").

    `stats`: wall time, refinements tried, states added by the resolution, whether the time budget ran
    out (`budget_exhausted`)."""

    visits: list[Visit]
    terminal: str
    method: str
    message: str
    degenerate: bool = False
    stats: dict = dataclasses.field(default_factory=dict)

    @property
    def passages(self) -> list[Visit]:
        """The visits that are slow passages: all but the attractor and the "unfinished" end."""
        out = [v for v in self.visits if v.status != "terminal"]
        return out[:-1] if self.terminal == "attractor" else out

    @property
    def refined_share(self) -> float:
        """The share of slow passages refined to a critical set (1.0 for a run without passages)."""
        p = self.passages
        return sum(v.refined for v in p) / len(p) if p else 1.0

    @property
    def nodes(self) -> list[str | None]:
        return [v.node for v in self.visits]

    @property
    def kinds(self) -> list[str]:
        return [v.kind for v in self.visits]

    @property
    def attractor(self) -> Visit | None:
        return self.visits[-1] if self.terminal == "attractor" else None

    def to_list(self) -> list[dict]:
        """[{node, t_in, t_out}, …] as written to summary.json."""
        return [dict(node=v.node, t_in=v.t_in, t_out=v.t_out) for v in self.visits]

    def __repr__(self):
        seq = " → ".join(f"{v.kind}{tuple(v.signature)}" for v in self.visits)
        return f"Itinerary({self.method}: {seq} ⇒ {self.terminal})"

    def _repr_html_(self):  # notebooks
        from ..view import itinerary_html

        return itinerary_html(self)

    def _repr_pretty_(self, printer, cycle):  # IPython: a long itinerary prints its ends
        if len(self.visits) <= 6:
            printer.text(repr(self))
            return
        part = lambda vs: " → ".join(f"{v.kind}{tuple(v.signature)}" for v in vs)  # noqa: E731
        printer.text(f"Itinerary({self.method}: {part(self.visits[:3])} → … {len(self.visits) - 5} more → "
                     f"{part(self.visits[-2:])} ⇒ {self.terminal})")


def problem_loss_label(problem) -> str:
    """What the run's loss is, in words: "population loss" (Gaussian inputs, the expectation),
    "objective" (a plain function of θ), "cross-entropy (training)" or "training loss"."""
    from ..objective import Objective
    from ..population import GaussianInputs

    if isinstance(problem.source, GaussianInputs):
        return "population loss"
    if isinstance(problem.source, Objective):
        return "objective"
    return "cross-entropy (training)" if problem.loss_family == "cross_entropy" else "training loss"
