"""Symmetries and reducibility of MLP parameters, and distances between network functions.

- **Canonical form** modulo the symmetries of every hidden layer: permutations of its neurons and, for
  odd σ, sign flips (incoming weights, bias and outgoing weights of one neuron negated together, since
  σ(−z) = −σ(z)). Layers are processed from the input side: fixing layer l permutes and negates entries
  of layer l+1's incoming rows, which are then put in order in turn. Two parameter vectors related by
  such a symmetry have bit-identical canonical forms.
- **Reduction** to the smallest network with the same function (Fukumizu & Amari 2000; Şimşek et al.
  2021, "Geometry of the loss landscape in overparameterized neural networks"): a neuron with zero outgoing
  weights contributes nothing; a neuron with zero incoming weights is constant, σ(b) (σ(0) without a
  bias): it contributes nothing when σ(b)·out = 0, is folded into the next layer's bias when that layer
  has one, and otherwise acts as a bias and stays; two neurons with the same incoming weights (or
  opposite ones, for odd σ) merge into one whose outgoing weights are the sum (difference).
- **Function distance**, one definition for the whole package: d(a, b) = sqrt( (1/N) Σ_k
  ‖f(x_k; a) − f(x_k; b)‖² ) over the training inputs x_k (squared error summed over outputs, averaged
  over inputs, rooted). **Fingerprints**: outputs on the training inputs plus a seeded set of Gaussian
  probe inputs (matched to the training inputs' mean and spread), compared with the same formula.
  Saddle-graph nodes are identified by the function together with the local index, not by raw
  parameters.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import _checks
from ..models import MLP
from ..problem import Problem

__all__ = ["canonical_form", "Reduction", "reduce_network", "reduces_to", "network_widths", "function_fingerprint", "function_distance",
           "function_distances", "output_distance", "output_scale", "fingerprint_distance", "probe_inputs",
           "symmetrize_neurons",
           "neuron_symmetries"]


def _model(model_or_problem) -> MLP:
    if isinstance(model_or_problem, Problem):
        if not model_or_problem.is_mlp:
            raise TypeError("symmetry operations (canonical_form, reduce_network, neuron_symmetries) need an "
                            f"MLP; this problem's model is {model_or_problem.model!r}.")
        if model_or_problem.free is not None:
            raise TypeError("this problem has frozen parameters: pass problem.model and the full "
                            "problem.full_theta(theta) to symmetry operations.")
        return model_or_problem.model
    if isinstance(model_or_problem, MLP):
        return model_or_problem
    raise TypeError(f"expected an MLP or a Problem, got {type(model_or_problem).__name__}.")


def layer_arrays(model: MLP, theta) -> list[list]:
    """[[W, b], …] as writable float64 numpy arrays (b None for layers without bias)."""
    out = []
    for sl in model.layout:
        W = np.array(theta[sl.W[0]: sl.W[1]], dtype=np.float64).reshape(sl.W_shape)
        b = None if sl.b is None else np.array(theta[sl.b[0]: sl.b[1]], dtype=np.float64)
        out.append([W, b])
    return out


def flatten_layers(layers) -> np.ndarray:
    """θ from [[W, b], …], the inverse of `layer_arrays`."""
    parts = []
    for W, b in layers:
        parts.append(W.reshape(-1))
        if b is not None:
            parts.append(b)
    return np.concatenate(parts) if parts else np.zeros(0)


def _unflatten(widths, bias, theta) -> list[list]:
    layers, start = [], 0
    for l in range(len(widths) - 1):
        shape = (widths[l + 1], widths[l])
        size = shape[0] * shape[1]
        W = np.array(theta[start: start + size], dtype=np.float64).reshape(shape)
        start += size
        b = None
        if bias[l]:
            b = np.array(theta[start: start + shape[0]], dtype=np.float64)
            start += shape[0]
        layers.append([W, b])
    if start != len(theta):
        raise ValueError(f"theta has {len(theta)} entries, the layout needs {start}.")
    return layers


def _incoming(layers, l, i) -> np.ndarray:
    """Row i of W_l and b_l[i] (hidden layer l, 1-based)."""
    W, b = layers[l - 1]
    return W[i] if b is None else np.append(W[i], b[i])


# ------------------------------------------------------------------------------------ canonical form
def flip_neuron(layers, l, i):
    """In place: neuron i of hidden layer l (1-based) with the sign of its incoming weights, bias and
    outgoing weights flipped."""
    W, b = layers[l - 1]
    W[i] *= -1.0
    if b is not None:
        b[i] *= -1.0
    layers[l][0][:, i] *= -1.0


def permute_neurons(layers, l, order):
    """In place: the neurons of hidden layer l (1-based) reordered by `order` (rows of W_l and b_l,
    columns of W_{l+1})."""
    W, b = layers[l - 1]
    layers[l - 1][0] = W[order]
    if b is not None:
        layers[l - 1][1] = b[order]
    layers[l][0] = layers[l][0][:, order]


def _first_sign(v, atol):
    nz = np.nonzero(np.abs(v) > atol)[0]
    return 0.0 if nz.size == 0 else float(np.sign(v[nz[0]]))


def canonical_form(model, theta, *, sign_flips: bool | None = None, atol: float = 0.0) -> np.ndarray:
    """The representative of θ modulo neuron permutations (and sign flips) of every hidden layer.

    **Arguments:**

    - `model`: an `MLP` or a `Problem`.
    - `theta`: a flat parameter vector.
    - `sign_flips`: quotient by sign flips too; default: exactly when σ is odd.
    - `atol`: entries with |x| ≤ atol count as zero when choosing a neuron's sign.

    **Rule:** layer by layer from the input, (1) flip each neuron (odd σ only) so that the first
    entry of its incoming weights-and-bias with |x| > atol is positive (its outgoing weights decide when
    all incoming ones are zero), then (2) sort the neurons lexicographically by (incoming weights, bias,
    outgoing weights).
    """
    model = _model(model)
    theta = _checks.theta_vector("theta", theta, model.n_params)
    if sign_flips is None:
        sign_flips = model.activation.odd
    layers = layer_arrays(model, theta)
    for l in model.hidden_layers:
        width = model.widths[l]
        if sign_flips:
            for i in range(width):
                s = _first_sign(_incoming(layers, l, i), atol)
                if s == 0.0:
                    s = _first_sign(layers[l][0][:, i], atol)
                if s < 0:
                    flip_neuron(layers, l, i)
        keys = np.stack([np.concatenate([_incoming(layers, l, i), layers[l][0][:, i]])
                         for i in range(width)])
        order = np.lexsort(keys.T[::-1])
        permute_neurons(layers, l, order)
    return flatten_layers(layers)


def neuron_symmetries(model, theta, *, seed: int = 0, sign_flips: bool | None = None) -> np.ndarray:
    """A random symmetry image of θ: every hidden layer permuted (and neurons flipped, for odd σ).

    Used in tests and to generate equivalent parameter vectors; the network function is unchanged.
    """
    model = _model(model)
    theta = _checks.theta_vector("theta", theta, model.n_params)
    if sign_flips is None:
        sign_flips = model.activation.odd
    rng = np.random.default_rng(seed)
    layers = layer_arrays(model, theta)
    for l in model.hidden_layers:
        if sign_flips:
            for i in range(model.widths[l]):
                if rng.random() < 0.5:
                    flip_neuron(layers, l, i)
        permute_neurons(layers, l, rng.permutation(model.widths[l]))
    return flatten_layers(layers)


# ------------------------------------------------------------------------------ symmetric subspace
def symmetrize_neurons(model, theta, *, min_cosine: float = 0.95) -> np.ndarray | None:
    """θ moved onto the symmetric subspace of its nearly aligned hidden neurons, or None when none are.

    Neurons of one hidden layer whose incoming vectors (weights and bias) have cosine ≥ `min_cosine`
    (|cosine| for odd σ, the sign carried along) form a cluster; every member gets the cluster's mean
    incoming and outgoing weights. The plateaus of teacher–student training sit near such subspaces
    (Saad & Solla 1995; Fukumizu & Amari 2000): the loss restricted there is a smaller network's, and
    its critical points are critical points of the whole network (the subspace is invariant under the
    flow), so a Newton-type solve started on it stays on it.
    """
    model = _model(model)
    theta = _checks.theta_vector("theta", theta, model.n_params)
    layers = layer_arrays(model, theta)
    odd = model.activation.odd
    changed = False
    for l in model.hidden_layers:
        width = model.widths[l]
        inc = np.stack([_incoming(layers, l, i) for i in range(width)])
        norms = np.linalg.norm(inc, axis=1)
        if width < 2 or np.any(norms == 0):
            continue
        cos = (inc @ inc.T) / np.outer(norms, norms)
        label = list(range(width))
        sign = np.ones(width)
        for i in range(width):
            for j in range(i):
                c = cos[i, j]
                if (c >= min_cosine or odd and -c >= min_cosine) and label[i] == i:
                    label[i] = label[j]
                    sign[i] = sign[j] * (1.0 if c > 0 else -1.0)
        for root in set(label):
            members = [i for i in range(width) if label[i] == root]
            if len(members) < 2:
                continue
            changed = True
            W, b = layers[l - 1]
            mean_in = np.mean([sign[i] * inc[i] for i in members], axis=0)
            mean_out = np.mean([sign[i] * layers[l][0][:, i] for i in members], axis=0)
            for i in members:
                W[i] = sign[i] * mean_in[: W.shape[1]]
                if b is not None:
                    b[i] = sign[i] * mean_in[-1]
                layers[l][0][:, i] = sign[i] * mean_out
    return flatten_layers(layers) if changed else None


# ------------------------------------------------------------------------------------------ reduction
@dataclasses.dataclass
class Reduction:
    """The smallest network a parameter vector reduces to, and the embedding back.

    **Fields:**

    - `original`: the `MLP` of θ; `widths`: the reduced widths (a hidden width may be 0: the network is
      then constant); `reduces_to`: the widths as a string, e.g. "1-1-1".
    - `model`: the reduced `MLP`, or None when a hidden width is 0.
    - `theta`: the reduced flat parameters (layout of `widths`, biases as in the original).
    - `operations`: what was removed, in order: dicts with `op` ("zero_output", "constant",
      "duplicate"), `layer`, `neuron` (original index) and, for duplicates, `into` and `sign`.

    `embed(theta_reduced)` maps reduced parameters to parameters of the original network with exactly
    the same function; `embed(self.theta)` returns θ up to the tolerance used (removed neurons with
    near-zero outgoing weights come back with exactly zero ones).
    """

    original: MLP
    widths: tuple[int, ...]
    theta: np.ndarray
    operations: list[dict]
    _inverse: list = dataclasses.field(repr=False, default_factory=list)

    @property
    def reduces_to(self) -> str:
        return "-".join(str(w) for w in self.widths)

    @property
    def reducible(self) -> bool:
        return tuple(self.widths) != tuple(self.original.widths)

    @property
    def model(self) -> MLP | None:
        if min(self.widths) == 0:
            return None
        return MLP(self.widths, self.original.activation, self.original.bias)

    def embed(self, theta_reduced) -> np.ndarray:
        """Parameters of the original network computing the same function as `theta_reduced`."""
        layers = _unflatten(self.widths, self.original.bias, np.asarray(theta_reduced, dtype=np.float64))
        for op in reversed(self._inverse):
            op(layers)
        return flatten_layers(layers)

    def to_dict(self) -> dict:
        return dict(reduces_to=self.reduces_to, widths=list(self.widths), reducible=self.reducible,
                    operations=self.operations, theta=self.theta.tolist())


def _remove(layers, l, pos):
    W, b = layers[l - 1]
    layers[l - 1][0] = np.delete(W, pos, axis=0)
    if b is not None:
        layers[l - 1][1] = np.delete(b, pos)
    layers[l][0] = np.delete(layers[l][0], pos, axis=1)


def _insert(layers, l, pos, incoming, outgoing):
    W, b = layers[l - 1]
    d = W.shape[1]
    layers[l - 1][0] = np.insert(W, pos, incoming[:d], axis=0)
    if b is not None:
        layers[l - 1][1] = np.insert(b, pos, incoming[d])
    layers[l][0] = np.insert(layers[l][0], pos, outgoing, axis=1)


def reduce_network(model, theta, *, atol: float = 1e-6) -> Reduction:
    """Remove dead, constant and duplicated hidden neurons until none is left (see the module notes).

    **Arguments:**

    - `model`: an `MLP` or a `Problem`; `theta`: a flat parameter vector.
    - `atol`: weights with |x| ≤ atol count as zero, and incoming vectors that agree to `atol`
      (max-norm) as equal.

    **Returns:** a `Reduction` (`reduces_to`, reduced `theta`, `embed`).
    """
    model = _model(model)
    theta = _checks.theta_vector("theta", theta, model.n_params)
    atol = _checks.nonnegative("atol", atol)
    sigma = model.activation.fn
    odd = model.activation.odd
    layers = layer_arrays(model, theta)
    ids = {l: list(range(model.widths[l])) for l in model.hidden_layers}
    ops, inverse = [], []
    changed = True
    while changed:
        changed = False
        for l in model.hidden_layers:
            has_bias = layers[l - 1][1] is not None
            next_bias = layers[l][1] is not None
            pos = 0
            while pos < layers[l - 1][0].shape[0]:
                W_in = layers[l - 1][0][pos]
                out = layers[l][0][:, pos].copy()
                inc = _incoming(layers, l, pos).copy()
                if np.max(np.abs(out), initial=0.0) <= atol:
                    ops.append(dict(op="zero_output", layer=l, neuron=ids[l][pos]))
                    inverse.append(_undo_removal(l, pos, inc, np.zeros_like(out)))
                    _remove(layers, l, pos)
                    del ids[l][pos]
                    changed = True
                    continue
                if np.max(np.abs(W_in), initial=0.0) <= atol:
                    c = float(sigma(np.float64(inc[-1] if has_bias else 0.0)))
                    if abs(c) * np.max(np.abs(out)) <= atol:
                        ops.append(dict(op="constant", layer=l, neuron=ids[l][pos], value=c, folded=False))
                        inverse.append(_undo_removal(l, pos, inc, out))
                        _remove(layers, l, pos)
                        del ids[l][pos]
                        changed = True
                        continue
                    if next_bias:
                        ops.append(dict(op="constant", layer=l, neuron=ids[l][pos], value=c, folded=True))
                        layers[l][1] = layers[l][1] + c * out
                        inverse.append(_undo_constant(l, pos, inc, out, c))
                        _remove(layers, l, pos)
                        del ids[l][pos]
                        changed = True
                        continue
                pos += 1
            # Duplicates: merge q into the first p < q with the same (or, odd σ, opposite) incoming.
            # All p < q are compared at once (the same differences, elementwise, as one by one: at width
            # 1 500 the pairwise loop took 11 s of CPU); p-major, s = +1 before −1, as before.
            W, b = layers[l - 1]
            incoming = W.copy() if b is None else np.hstack([W, b[:, None]])
            q = 1
            while q < layers[l - 1][0].shape[0]:
                inc_q = incoming[q]
                same = np.max(np.abs(incoming[:q] - inc_q), axis=1) <= atol
                match = same | (np.max(np.abs(incoming[:q] - (-1.0) * inc_q), axis=1) <= atol) if odd else same
                hits = np.flatnonzero(match)
                if hits.size == 0:
                    q += 1
                    continue
                p = int(hits[0])
                s = 1.0 if same[p] else -1.0
                a = layers[l][0][:, p].copy()
                b = layers[l][0][:, q].copy()
                m = a + s * b
                ops.append(dict(op="duplicate", layer=l, neuron=ids[l][q], into=ids[l][p], sign=int(s)))
                inverse.append(_undo_merge(l, p, q, s, a, b, m))
                layers[l][0][:, p] = m
                _remove(layers, l, q)
                incoming = np.delete(incoming, q, axis=0)
                del ids[l][q]
                changed = True
    widths = (model.widths[0],) + tuple(layers[l - 1][0].shape[0] for l in model.hidden_layers) + \
        (model.widths[-1],)
    return Reduction(model, widths, flatten_layers(layers), ops, inverse)


def reduces_to(problem: Problem, theta, *, atol: float = 1e-6) -> str:
    """The widths of the smallest network computing θ's function, e.g. "1-1-1" (`reduce_network`).

    An irreducible θ gives its own widths ("1-2-1"), so that a record always names the network it
    stands for; a model that is not an `MLP` gives "" (reductions are neuron operations). The one
    definition behind `CriticalPoint.reduces_to`, `Visit.reduces_to` and the saddle-graph nodes.
    """
    if not problem.is_mlp:
        return ""
    return reduce_network(*problem.mlp_theta(theta), atol=atol).reduces_to


def network_widths(problem: Problem) -> str:
    """The widths of the problem's own network as `reduces_to` writes them ("4-2-1"; "" for a model that
    is not an `MLP`): a record whose `reduces_to` differs from it stands for a smaller network."""
    return "-".join(str(w) for w in problem.model.widths) if problem.is_mlp else ""


def _undo_removal(l, pos, incoming, outgoing):
    def undo(layers):
        _insert(layers, l, pos, incoming, outgoing)
    return undo


def _undo_constant(l, pos, incoming, outgoing, c):
    def undo(layers):
        layers[l][1] = layers[l][1] - c * outgoing
        _insert(layers, l, pos, incoming, outgoing)
    return undo


def _undo_merge(l, p, q, s, a, b, m):
    """Split neuron p back into p and q: out_p = a + α(m' − m), out_q = b + s(1 − α)(m' − m), so that
    out_p + s·out_q = m' (same function) and the original (a, b) comes back when m' = m."""
    mm = float(m @ m)
    alpha = float(a @ m) / mm if mm > 0 else 0.5

    def undo(layers):
        m_new = layers[l][0][:, p].copy()
        d = m_new - m
        layers[l][0][:, p] = a + alpha * d
        inc_p = _incoming(layers, l, p)
        _insert(layers, l, q, s * inc_p, b + s * (1.0 - alpha) * d)
    return undo


# ----------------------------------------------------------------------------------- function space
def probe_inputs(problem: Problem, n_probe: int = 256, seed: int = 0) -> np.ndarray:
    """`n_probe` seeded Gaussian inputs with the training inputs' per-dimension mean and spread."""
    x = np.asarray(problem.x)
    rng = np.random.default_rng(seed)
    mu = x.mean(axis=0)
    sd = x.std(axis=0) if x.shape[0] > 1 else np.ones(x.shape[1])
    sd = np.where(sd > 0, sd, 1.0)
    return mu + sd * rng.standard_normal((n_probe, x.shape[1]))


def function_fingerprint(problem: Problem, theta, *, n_probe: int = 256, seed: int = 0) -> np.ndarray:
    """The network function on the training inputs followed by the probe inputs, flattened (outputs;
    class probabilities for cross-entropy, see `Problem.function_space`).

    Two parameter vectors compute the same function (to the resolution of the probe set) exactly when
    their fingerprints agree; compare them with `fingerprint_distance` (the `function_distance`
    formula).
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    x = np.concatenate([np.asarray(problem.x), probe_inputs(problem, n_probe, seed)])
    return problem.function_values(theta, x).reshape(-1)


def output_distance(fa, fb):
    """d = sqrt( mean over inputs x_k of ‖f_a(x_k) − f_b(x_k)‖² ) from outputs of shape (…, N, d_out).

    The squared error is summed over the outputs and averaged over the inputs, then rooted: the RMS
    of the residual norm, in the units of y. It broadcasts over leading axes and works on numpy and
    jax arrays alike (traceable inside `jit`). Every function-space distance of the package is this one.
    """
    diff = fa - fb
    return ((diff * diff).sum(axis=-1).mean(axis=-1)) ** 0.5


def output_scale(y) -> float:
    """The RMS of targets y of shape (N, d_out) (or (N,)) in the function-space metric: d(y, 0) =
    sqrt( (1/N) Σ_k ‖y_k‖² ), per sample, summed over the outputs (`output_distance` to zero).

    Per sample, not per element: every radius and tolerance built from it (an escape ball, an itinerary's
    visit radius, the same-set tolerance) is compared with `output_distance`, which sums over the
    outputs; a per-element RMS would be √d_out smaller.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    return float(output_distance(y, np.zeros_like(y)))


def fingerprint_distance(fp_a, fp_b, d_out: int):
    """`output_distance` between flattened fingerprints (`function_fingerprint`) of a d_out-output net.

    `fp_a` may hold many fingerprints in its rows; `fp_b` is broadcast against them.
    """
    a = np.asarray(fp_a, dtype=np.float64)
    b = np.asarray(fp_b, dtype=np.float64)
    return output_distance(a.reshape(a.shape[:-1] + (-1, d_out)), b.reshape(b.shape[:-1] + (-1, d_out)))


def _inputs(problem: Problem, n_probe: int, seed: int) -> np.ndarray:
    x = np.asarray(problem.x)
    return x if n_probe == 0 else np.concatenate([x, probe_inputs(problem, n_probe, seed)])


def function_distance(problem: Problem, theta_a, theta_b, *, n_probe: int = 0, seed: int = 0) -> float:
    """The function-space distance d(a, b) = sqrt( (1/N) Σ_k ‖f(x_k; a) − f(x_k; b)‖² ).

    The inputs x_k are the training inputs, followed by `n_probe` seeded probe inputs when asked
    (`probe_inputs`; default none); f is the class probabilities for cross-entropy
    (`Problem.function_space`). See `output_distance`; many θ against one reference at once:
    `function_distances`.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    n_probe = int(_checks.nonnegative("n_probe", n_probe))
    x = _inputs(problem, n_probe, seed)
    fa = problem.function_values(theta_a, x)
    fb = problem.function_values(theta_b, x)
    return float(output_distance(fa, fb))


def function_distances(problem: Problem, thetas, reference) -> np.ndarray:
    """`function_distance` (training inputs) of every row of `thetas` to one `reference` θ, shape (m,).

    The outputs of all rows are computed in one jitted, vmapped call (`problem.training_outputs`).
    """
    from ..problem import training_outputs

    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    thetas = _checks.theta_batch("thetas", thetas, problem.n_params)
    reference = _checks.theta_vector("reference", reference, problem.n_params)
    out = training_outputs(problem, np.concatenate([thetas, reference[None]]))
    return np.asarray(output_distance(out[:-1], out[-1:]))
