"""flowtools: neural-network training as a dynamical system.

Gradient flow dθ/dt = −∇L(θ) with stiff solvers (diffrax), the discrete GD map, critical points and their
Morse signatures, unstable manifolds, and saddle → saddle → attractor itineraries.
"""

import jax

# float64 everywhere: tolerances below 1e-8 are meaningless in float32.
jax.config.update("jax_enable_x64", True)

from . import datasets, io  # noqa: E402
from .activations import ACTIVATIONS, Activation, get_activation  # noqa: E402
from .data import Dataset, GaussianPopulation, Teacher, load_xy, teacher_dataset  # noqa: E402
from .dynamics import (  # noqa: E402
    SOLVERS,
    Status,
    Trajectory,
    gradient_descent,
    gradient_flow,
    run_ensemble,
    sgd,
)
from .models import MLP  # noqa: E402
from .problem import LOSS_CONVENTIONS, Problem  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "Activation", "get_activation",
    "Dataset", "GaussianPopulation", "Teacher", "load_xy", "teacher_dataset",
    "MLP", "Problem", "LOSS_CONVENTIONS",
    "gradient_flow", "gradient_descent", "sgd", "run_ensemble", "SOLVERS", "Status", "Trajectory",
    "datasets", "io",
]
