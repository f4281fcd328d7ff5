"""Dynamics: gradient flow (diffrax), the gradient-descent map and SGD, ensembles, trajectories."""

from .descent import gradient_descent, record_schedule, sgd
from .ensemble import run_ensemble
from .flow import SOLVERS, gradient_flow, log_time_grid
from .trajectory import Status, Trajectory, evaluate_states

__all__ = ["gradient_descent", "sgd", "record_schedule", "gradient_flow", "SOLVERS", "log_time_grid",
           "Status", "Trajectory", "evaluate_states", "run_ensemble"]
