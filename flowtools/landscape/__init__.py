"""The landscape layer: slow points, critical points, Hessian spectra, symmetry, unstable manifolds.

Trajectory ──► `slow_points` ──► `find_critical_point` (Newton-type, any index) ──► `CriticalPoint`
(spectrum, Morse signature, kind, reduction) ──► `unstable_manifold` (where its unstable directions lead).
"""

from .critical import (
    KINDS,
    CriticalPoint,
    classify,
    classify_point,
    critical_point_at,
    find_critical_point,
    find_critical_points,
    loss_floor_spectrum,
)
from .higher_order import HigherOrderTest, higher_order_test
from .input_symmetry import InputSymmetry, canonical_input, orbit_fingerprint
from .manifolds import ManifoldBranch, UnstableManifold, match_target, unstable_manifold
from .paths import TransitionPath, align_minimum, transition_path
from .dimer import SaddleSearch, lowest_mode, saddle_search
from .atlas import Atlas, ConnectResult, disconnectivity_tree
from .certify import Certificate, certify_relu_critical_point
from .slow import SlowPoint, resolve_trajectory, slow_points
from .spectrum import (
    DEFAULT_RTOL_ZERO,
    Spectrum,
    estimate_negative_count,
    hessian_spectrum,
    morse_index,
    signature,
)
from .symmetry import (
    Reduction,
    canonical_form,
    fingerprint_distance,
    function_distance,
    function_distances,
    function_fingerprint,
    neuron_symmetries,
    output_distance,
    probe_inputs,
    reduce_network,
    symmetrize_neurons,
)

__all__ = [
    "SlowPoint", "slow_points",
    "UnstableManifold", "ManifoldBranch", "unstable_manifold", "match_target",
    "CriticalPoint", "find_critical_point", "find_critical_points", "critical_point_at", "classify",
    "classify_point", "loss_floor_spectrum", "KINDS", "HigherOrderTest", "higher_order_test",
    "Spectrum", "hessian_spectrum", "morse_index", "signature", "estimate_negative_count",
    "DEFAULT_RTOL_ZERO",
    "Reduction", "canonical_form", "reduce_network", "function_distance", "function_distances",
    "function_fingerprint", "fingerprint_distance", "output_distance", "neuron_symmetries", "probe_inputs",
    "symmetrize_neurons", "resolve_trajectory", "InputSymmetry", "canonical_input", "orbit_fingerprint",
    "TransitionPath", "transition_path", "align_minimum", "SaddleSearch", "saddle_search", "lowest_mode",
    "Atlas", "ConnectResult", "disconnectivity_tree", "Certificate", "certify_relu_critical_point",
]
