"""Problem: a model, a data source and a loss, with L, ∇L, Hessians and R on a flat θ.

A `Problem` is the vector field −∇L. It is built from three parts and one option:

- a **model**: an `MLP`, or a `FunctionModel` (any JAX function f(θ, x) of a flat θ, or an equinox
  module raveled with `ravel_pytree`);
- a **data source**: a finite `Dataset` (the expectation is the sample mean), or any `DataSource`
  (e.g. Gaussian inputs with a teacher, the population loss);
- a **loss** ℓ(f, y) averaged over the source, plus optional L2 weight decay (λ/2)‖θ‖²:

  - "half_mse" (default): ℓ = ½‖f − y‖², so L = (1/2n) Σ_k ‖f(x_k; θ) − y_k‖² (Maleknia & Sato, Sec. 2)
  - "mse":                ℓ = ‖f − y‖²
  - "cross_entropy":      ℓ = −Σ_j y_j log softmax(f)_j, with integer labels (one column, values
    0 … d_out − 1, stored one-hot) or one-hot / probability rows of width d_out;

- optionally **frozen parameters**: a mask or named groups of θ held at given values. The Problem's
  state is then the free coordinates only: every method (loss, grad, hessian, predict, …), flow, GD,
  critical points and spectra act on θ_free, and Morse signatures are counted on the free subspace.
  `full_theta(θ_free)` embeds a state into the model's full θ; `free_theta(θ_full)` projects back.

GD with step η on "mse" equals GD with step 2η on "half_mse". Gradient-flow time t and GD step k are
related by t = kη for the same convention. The two squared-error conventions differ only in a weight
(½ or 1) that the problem carries as data, so problems that differ only in it share compiled code.
An optional held-out `test_data` set is evaluated along runs (test loss, and accuracy for
classification); it never enters L.

`flowtools.problem` re-exports its parts: the losses (`_losses`), the data sources (`_sources`), frozen
parameters (`_frozen`), the `Problem` (`_problem`) and the batch kernels (`_batch`).
"""

from ._batch import STATE_CHUNK_BYTES as STATE_CHUNK_BYTES
from ._batch import STATE_VMAP_BYTES as STATE_VMAP_BYTES
from ._batch import dense_hessian_fn as dense_hessian_fn
from ._batch import held_out_metrics as held_out_metrics
from ._batch import map_states as map_states
from ._batch import state_chunk as state_chunk
from ._batch import state_vmap_width as state_vmap_width
from ._batch import training_outputs as training_outputs
from ._losses import LOSS_CONVENTIONS as LOSS_CONVENTIONS
from ._losses import LOSSES as LOSSES
from ._losses import sample_losses as sample_losses
from ._problem import Problem as Problem
from ._sources import DataSource as DataSource
from ._sources import FiniteData as FiniteData

__all__ = ["Problem", "LOSSES", "LOSS_CONVENTIONS", "DataSource", "FiniteData", "training_outputs",
           "held_out_metrics"]
