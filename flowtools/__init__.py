"""flowtools: neural-network training as a dynamical system.

Gradient flow dθ/dt = −∇L(θ) with stiff solvers (diffrax), the discrete GD map, critical points and their
Morse signatures, unstable manifolds, and saddle → saddle → attractor itineraries.

The top level holds what a typical study uses (models, data, problems, runs, critical points,
itineraries, escape analysis) and the type each of those functions returns; specialist tools stay in
their submodules (`flowtools.landscape`, `flowtools.dynamics`, `flowtools.splitting`, `flowtools.io`,
`flowtools.plotting`, …). docs/api/index.md lists both, and tests/test_docs_api.py keeps it true.
"""

import jax

# float64 everywhere: tolerances below 1e-8 are meaningless in float32.
jax.config.update("jax_enable_x64", True)

from ._cache import compilation_cache_dir, disable_compilation_cache, enable_compilation_cache  # noqa: E402

# Compiled kernels persist across processes (~/.cache/flowtools/jax). This installs flowtools' atomic
# writes and healing reads into JAX's cache (_cache.py); FLOWTOOLS_CACHE=0 leaves JAX untouched.
_cache._enable_on_import()

from . import datasets, deep_linear, escape, io, sweeps, universality  # noqa: E402
from .activations import ACTIVATIONS, Activation, get_activation  # noqa: E402
from .data import Dataset, GaussianQuadrature, Teacher, load_xy, teacher_dataset  # noqa: E402
from .dynamics import (  # noqa: E402
    SOLVERS,
    Status,
    Trajectory,
    gradient_descent,
    gradient_flow,
    run_ensemble,
    sgd,
)
from . import dynamics, landscape, splitting  # noqa: E402
from .escape import escape_time, fit_log_law, fit_power_law, linearized_escape_time, plateau_length  # noqa: E402
from .escape import (  # noqa: E402
    Basin,
    BasinFractions,
    basin_fractions,
    plateaus,
    EscapeDistribution,
    EscapeRun,
    EscapeTime,
    Plateau,
    ScalingFit,
    bottleneck_init,
    bottleneck_layers,
    bottleneck_saddle,
    escape_flow,
    escape_time_distribution,
)
from .graph import SaddleGraph  # noqa: E402
from .itineraries import Itinerary, Visit, add_to_graph, itinerary, refinement_share, saddle_graph  # noqa: E402
from .landscape import (  # noqa: E402
    CriticalPoint,
    Reduction,
    SlowPoint,
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
from .landscape import SaddleSearch, TransitionPath, saddle_search, transition_path  # noqa: E402
from .landscape import Atlas, disconnectivity_tree  # noqa: E402
from .models import MLP, FunctionModel  # noqa: E402
from .problem import LOSS_CONVENTIONS, LOSSES, DataSource, FiniteData, Problem  # noqa: E402
from . import gaussian  # noqa: E402
from .gaussian import population_risk  # noqa: E402
from .population import GaussianInputs  # noqa: E402
from .landscape.input_symmetry import InputSymmetry  # noqa: E402
from . import problems  # noqa: E402
from .splitting import SplitPrediction, inner_hessian, predict_split, split_neuron  # noqa: E402
from .sweeps import sweep  # noqa: E402
from .universality import (  # noqa: E402
    ActivationClass,
    ImbalanceCheck,
    ImbalanceRate,
    activation_class,
    imbalance_residual,
    norm_imbalance,
    norm_imbalance_rate,
    phi_sigma,
)

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "Activation", "get_activation",
    "Dataset", "GaussianQuadrature", "Teacher", "load_xy", "teacher_dataset",
    "MLP", "FunctionModel", "Problem", "LOSS_CONVENTIONS", "LOSSES", "DataSource", "FiniteData",
    "GaussianInputs", "population_risk", "gaussian", "InputSymmetry", "problems",
    "gradient_flow", "gradient_descent", "sgd", "run_ensemble", "SOLVERS", "Status", "Trajectory",
    "datasets", "deep_linear", "io", "escape", "universality",
    "dynamics", "landscape", "splitting", "sweeps", "sweep",
    "escape_time", "linearized_escape_time", "plateau_length", "fit_power_law", "fit_log_law",
    "EscapeTime", "escape_flow", "EscapeRun", "Plateau", "ScalingFit",
    "plateaus", "basin_fractions", "BasinFractions", "Basin",
    "escape_time_distribution", "EscapeDistribution",
    "bottleneck_layers", "bottleneck_init", "bottleneck_saddle",
    "activation_class", "phi_sigma", "norm_imbalance_rate",
    "ActivationClass", "norm_imbalance", "ImbalanceRate", "imbalance_residual", "ImbalanceCheck",
    "slow_points", "find_critical_point", "find_critical_points", "CriticalPoint", "hessian_spectrum",
    "Spectrum", "morse_index", "canonical_form", "reduce_network", "function_distance",
    "function_fingerprint", "unstable_manifold", "UnstableManifold", "SlowPoint", "Reduction",
    "itinerary", "Itinerary", "Visit", "add_to_graph", "refinement_share", "saddle_graph", "SaddleGraph",
    "split_neuron", "inner_hessian", "predict_split", "SplitPrediction",
    "enable_compilation_cache", "disable_compilation_cache", "compilation_cache_dir",
    "transition_path", "TransitionPath", "saddle_search", "SaddleSearch",
    "Atlas", "disconnectivity_tree",
]

from . import _deprecation  # noqa: E402

__getattr__ = _deprecation.renamed_attributes(__name__, {"GaussianPopulation": "GaussianQuadrature"})
