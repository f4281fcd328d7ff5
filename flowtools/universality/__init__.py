"""flowtools.universality: re-exports."""

from ._imbalance import (
    ActivationClass,
    ACTIVATION_CLASSES,
    phi_sigma,
    activation_class,
    taylor_coefficients,
    norm_imbalance,
    ImbalanceRate,
    norm_imbalance_rate,
    ImbalanceCheck,
    imbalance_residual,
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
