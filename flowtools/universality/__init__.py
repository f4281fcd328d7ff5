"""Universality of saddle escape ("A Theory of Saddle Escape in Deep Nonlinear Networks", 2026), one concept
per module: activation classes by φ_σ and its Taylor coefficients (`_activation_class`), and the
norm-imbalance identity of gradient flow and its rate (`_imbalance`).
"""

from ._activation_class import (
    ActivationClass as ActivationClass,
    ACTIVATION_CLASSES as ACTIVATION_CLASSES,
    phi_sigma as phi_sigma,
    activation_class as activation_class,
    taylor_coefficients as taylor_coefficients,
)
from ._imbalance import (
    norm_imbalance as norm_imbalance,
    ImbalanceRate as ImbalanceRate,
    norm_imbalance_rate as norm_imbalance_rate,
    ImbalanceCheck as ImbalanceCheck,
    imbalance_residual as imbalance_residual,
)

__all__ = [
    "ActivationClass",
    "ACTIVATION_CLASSES",
    "phi_sigma",
    "activation_class",
    "taylor_coefficients",
    "norm_imbalance",
    "ImbalanceRate",
    "norm_imbalance_rate",
    "ImbalanceCheck",
    "imbalance_residual",
]
