"""flowtools: neural-network training as a dynamical system.

Gradient flow dθ/dt = −∇L(θ) with stiff solvers (diffrax), the discrete GD map, critical points and their
Morse signatures, unstable manifolds, and saddle → saddle → attractor itineraries.
"""

import jax

# float64 everywhere: tolerances below 1e-8 are meaningless in float32.
jax.config.update("jax_enable_x64", True)

from . import datasets, escape, io, sweeps, universality  # noqa: E402
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
from .escape import escape_time, fit_log_law, fit_power_law, linearized_escape_time, plateau_length  # noqa: E402
from .graph import SaddleGraph  # noqa: E402
from .itinerary import Itinerary, Visit, add_to_graph, itinerary  # noqa: E402
from .landscape import (  # noqa: E402
    CriticalPoint,
    Spectrum,
    UnstableManifold,
    canonical_form,
    find_critical_point,
    find_critical_points,
    function_distance,
    function_fingerprint,
    hessian_spectrum,
    morse_index,
    reduce_network,
    slow_points,
    unstable_manifold,
)
from .models import MLP  # noqa: E402
from .problem import LOSS_CONVENTIONS, Problem  # noqa: E402
from .splitting import inner_hessian, predict_split, split_neuron  # noqa: E402
from .sweeps import sweep  # noqa: E402
from .universality import activation_class, norm_imbalance_rate, phi_sigma  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "Activation", "get_activation",
    "Dataset", "GaussianPopulation", "Teacher", "load_xy", "teacher_dataset",
    "MLP", "Problem", "LOSS_CONVENTIONS",
    "gradient_flow", "gradient_descent", "sgd", "run_ensemble", "SOLVERS", "Status", "Trajectory",
    "datasets", "io", "escape", "universality", "sweeps", "sweep",
    "escape_time", "linearized_escape_time", "plateau_length", "fit_power_law", "fit_log_law",
    "activation_class", "phi_sigma", "norm_imbalance_rate",
    "slow_points", "find_critical_point", "find_critical_points", "CriticalPoint", "hessian_spectrum",
    "Spectrum", "morse_index", "canonical_form", "reduce_network", "function_distance",
    "function_fingerprint", "unstable_manifold", "UnstableManifold",
    "itinerary", "Itinerary", "Visit", "add_to_graph", "SaddleGraph",
    "split_neuron", "inner_hessian", "predict_split",
]
