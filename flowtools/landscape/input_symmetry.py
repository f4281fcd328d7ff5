"""Symmetries of a problem beyond its hidden neurons: permutations and sign flips of input coordinates.

A network's own symmetries (permuting hidden neurons, flipping odd ones) leave its function unchanged,
so function fingerprints identify critical sets up to them for free. A problem can have more: when the
input distribution and the teacher are both invariant under a map x ↦ Px of the inputs (a permutation
of coordinates, a sign flip of some), then θ and its image θ·P (first-layer weights W ↦ W P) have the
same loss, gradient norm and Morse signature, though not the same function. Safran & Shamir's landscape
(ICML 2018) is the standard case: x ~ N(0, I_k) and a teacher of k orthonormal ReLUs v_j = e_j are
invariant under every permutation of the k coordinates, and its spurious minima come in orbits of up to
k! points.

`InputSymmetry` declares such a group; a `Problem` carries it (`Problem(..., symmetry=...)` or
`problem.with_symmetry(...)`), which checks on seeded random points that the loss really is invariant.
Itineraries then give each visit the fingerprint of its **canonical representative** (`canonical_input`),
so that graph nodes, attractors and basin fractions are counted up to the full group.

**Canonical representative.** The Gram matrix G = WᵀW of the first layer is invariant under the hidden
symmetries (permuting or flipping rows of W) and transforms as G ↦ PᵀGP under an input permutation P.
Columns are ordered by the invariant key (G_cc, sorted |G_c,·| off the diagonal, sorted |W_·c|); columns
whose keys tie (to `atol`) are tried in every order within their tie class (at most `max_candidates`
orders in all), each completed by the hidden-neuron `canonical_form`, and the lexicographically least
result, rounded to `atol`, is kept. With input sign flips the column's sign is chosen first so that
Σ_i W_ic³ > 0 (invariant under row permutations; not under hidden sign flips, so flips of inputs are
refused for odd σ). Equivalent points give the same representative up to round-off whenever their
keys are resolved at `atol`; a tie class larger than the budget falls back to one order and is
reported by `canonical_input(..., return_info=True)`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from .. import _checks
from ..models import MLP
from .symmetry import canonical_form, flatten_layers, layer_arrays

__all__ = ["InputSymmetry", "canonical_input", "apply_input_map", "check_symmetry", "orbit_fingerprint"]


@dataclasses.dataclass(frozen=True)
class InputSymmetry:
    """A group of maps of the input coordinates under which the problem's loss is invariant.

    **Arguments:**

    - `permutations`: True for every permutation of the d input coordinates (the symmetric group S_d), a
      list of blocks (tuples of coordinate indices) whose coordinates may be permuted among themselves,
      or False for none.
    - `sign_flips`: True when flipping the sign of any input coordinate leaves the problem unchanged (an
      even teacher, such as a linear teacher, under symmetric inputs); refused for odd activations, whose
      hidden sign flips already mix with it.
    - `atol`: the resolution, relative to max|W|, at which column invariants tie and representatives are
      compared (default 1e-6: refined critical points agree to ≈ 1e-10).
    - `max_candidates`: the most column orders tried within tie classes.
    """

    permutations: bool | tuple = True
    sign_flips: bool = False
    atol: float = 1e-6
    max_candidates: int = 720

    def __post_init__(self):
        perms = self.permutations
        if isinstance(perms, (list, tuple)):
            blocks = []
            for b in perms:
                if not isinstance(b, (list, tuple, range)) or not all(isinstance(i, (int, np.integer))
                                                                     for i in b):
                    raise TypeError("permutations must be True, False or a list of blocks (tuples of input "
                                    f"coordinate indices), got the block {b!r}.")
                blocks.append(tuple(int(i) for i in b))
            flat = [i for b in blocks for i in b]
            if len(set(flat)) != len(flat) or any(i < 0 for i in flat):
                raise ValueError(f"permutations: the blocks {blocks} must hold distinct indices ≥ 0.")
            object.__setattr__(self, "permutations", tuple(blocks))
        elif not isinstance(perms, bool):
            raise TypeError(f"permutations must be True, False or a list of index blocks, got {perms!r}.")
        if not isinstance(self.sign_flips, bool):
            raise TypeError(f"sign_flips must be True or False, got {self.sign_flips!r}.")
        _checks.positive("atol", self.atol)
        _checks.positive_int("max_candidates", self.max_candidates)

    def blocks(self, d: int) -> list[tuple]:
        """The blocks of coordinates that may be permuted among themselves, for d inputs."""
        if self.permutations is True:
            return [tuple(range(d))]
        if self.permutations is False:
            return [(i,) for i in range(d)]
        flat = {i for b in self.permutations for i in b}
        if max(flat, default=-1) >= d:
            raise ValueError(f"permutations names input coordinate {max(flat)}, but the model has d_in={d}.")
        return list(self.permutations) + [(i,) for i in range(d) if i not in flat]

    def order(self, d: int) -> int:
        """The number of elements of the group on d inputs."""
        n = math.prod(math.factorial(len(b)) for b in self.blocks(d))
        return n * (2 ** d if self.sign_flips else 1)

    def generators(self, d: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(permutation, signs) pairs that generate the group: adjacent transpositions within each block,
        and one sign flip per coordinate."""
        out = []
        for b in self.blocks(d):
            for i, j in zip(b[:-1], b[1:]):
                p = np.arange(d)
                p[i], p[j] = j, i
                out.append((p, np.ones(d)))
        if self.sign_flips:
            for i in range(d):
                s = np.ones(d)
                s[i] = -1.0
                out.append((np.arange(d), s))
        return out

    def check_model(self, model) -> None:
        if not isinstance(model, MLP):
            raise TypeError(f"symmetry needs an MLP model (it acts on the first layer's columns), got {model!r}.")
        if self.sign_flips and model.activation.odd:
            raise ValueError("symmetry: input sign flips with an odd activation are not supported (they mix "
                             "with the hidden neurons' own sign flips); declare permutations only.")
        self.blocks(model.d_in)


def apply_input_map(model: MLP, theta, permutation, signs=None) -> np.ndarray:
    """θ for the network x ↦ f(S P x; θ) expressed in the original coordinates: the first layer's
    columns permuted (W ↦ W[:, permutation]) and multiplied by `signs`."""
    layers = layer_arrays(model, np.asarray(theta, dtype=np.float64))
    W = layers[0][0][:, np.asarray(permutation)]
    if signs is not None:
        W = W * np.asarray(signs, dtype=np.float64)[None, :]
    layers[0][0] = W
    return flatten_layers(layers)


def _round(x, q):
    return np.round(np.asarray(x) / q) * q


def _column_keys(W, q, flips):
    G = W.T @ W
    d = G.shape[0]
    keys = []
    for c in range(d):
        off = np.delete(np.abs(G[c]), c)
        keys.append(tuple(_round(np.concatenate([[G[c, c]], np.sort(off)[::-1],
                                                 np.sort(np.abs(W[:, c]))[::-1]]), q)))
    return keys


def canonical_input(model: MLP, theta, symmetry: InputSymmetry, *, sign_flips: bool | None = None,
                    return_info: bool = False):
    """The canonical representative of θ under the declared input group and the hidden symmetries.

    **Arguments:**

    - `model`: the `MLP`; `theta`: its full parameter vector.
    - `symmetry`: an `InputSymmetry`.
    - `sign_flips`: hidden-neuron sign flips, as in `canonical_form` (default: when σ is odd).
    - `return_info`: also return a dict with the number of candidate orders tried and whether the
      tie classes exceeded the budget (`exhaustive`).

    **Returns:** the representative (flat θ), equal up to round-off for θ's related by the group.
    """
    symmetry.check_model(model)
    theta = _checks.theta_vector("theta", theta, model.n_params)
    layers = layer_arrays(model, theta)
    W = layers[0][0]
    d = W.shape[1]
    scale = float(np.max(np.abs(W))) if W.size else 0.0
    q = symmetry.atol * (scale if scale > 0 else 1.0)
    if symmetry.sign_flips:
        cubes = np.sum(W ** 3, axis=0)
        qc = symmetry.atol * (scale if scale > 0 else 1.0) ** 3
        W = W * np.where(_round(cubes, qc) < 0, -1.0, 1.0)[None, :]
    keys = _column_keys(W, q, symmetry.sign_flips)
    # Order within each block by key; ties are the classes whose orders are searched.
    base = np.arange(d)
    classes = []
    for b in symmetry.blocks(d):
        b = sorted(b, key=lambda c: keys[c], reverse=True)
        groups = [list(g) for _, g in itertools.groupby(b, key=lambda c: keys[c])]
        classes.append(groups)
    slots = [sorted(b) for b in symmetry.blocks(d)]
    tie_groups = [g for groups in classes for g in groups if len(g) > 1]
    n_orders = math.prod(math.factorial(len(g)) for g in tie_groups)
    exhaustive = n_orders <= symmetry.max_candidates

    def assemble(choice):
        perm = base.copy()
        it = iter(choice)
        for groups, slot in zip(classes, slots):
            seq = []
            for g in groups:
                seq.extend(next(it) if len(g) > 1 else g)
            perm[slot] = seq
        return perm

    per_group = [itertools.permutations(g) if exhaustive else iter([tuple(g)]) for g in tie_groups]
    best, best_key, tried = None, None, 0
    for combo in itertools.product(*per_group):
        perm = assemble(list(combo))
        th = flatten_layers([[W[:, perm] if i == 0 else L[0], L[1]] for i, L in enumerate(layers)])
        canon = canonical_form(model, th, sign_flips=sign_flips, atol=q)
        key = tuple(_round(canon, q))
        tried += 1
        if best_key is None or key < best_key:
            best, best_key = canon, key
    if return_info:
        return best, dict(candidates=tried, exhaustive=exhaustive, tie_classes=[len(g) for g in tie_groups])
    return best


def check_symmetry(problem, symmetry: InputSymmetry, *, n_points: int = 2, seed: int = 0,
                   rtol: float = 1e-9) -> None:
    """Raise a clear error unless the loss is invariant under every generator of `symmetry`, tested on
    `n_points` seeded random points (the model's "normal" init at scale 1), and unless the group leaves
    the frozen parameters where they are."""
    if not isinstance(symmetry, InputSymmetry):
        raise TypeError(f"symmetry must be a flowtools.InputSymmetry, got {type(symmetry).__name__}.")
    symmetry.check_model(problem.model)
    model = problem.model
    for k in range(n_points):
        full = np.asarray(model.init(seed + k, "normal", scale=1.0), dtype=np.float64)
        if problem.free is not None:
            full = np.where(problem.frozen_mask, np.asarray(problem.frozen_base), full)
        loss = float(problem.loss(problem.free_theta(full)))
        for perm, signs in symmetry.generators(model.d_in):
            image = apply_input_map(model, full, perm, signs)
            if problem.free is not None and not np.array_equal(image[problem.frozen_mask],
                                                               full[problem.frozen_mask]):
                raise ValueError("symmetry moves frozen parameters (the first layer is frozen): an input "
                                 "symmetry must act on free weights only.")
            other = float(problem.loss(problem.free_theta(image)))
            if not abs(other - loss) <= rtol * max(1.0, abs(loss)):
                what = ("a sign flip of input " + str(int(np.argmin(signs)))) if np.any(signs < 0) else \
                    ("the swap of inputs " + str([int(i) for i in np.nonzero(perm != np.arange(len(perm)))[0]]))
                raise ValueError(f"symmetry: the loss is not invariant under {what}: L = {loss:.12g} at a "
                                 f"random point and {other:.12g} at its image. Declare only maps that leave "
                                 "both the input distribution and the teacher unchanged.")


def orbit_fingerprint(problem, theta, **fingerprint_options) -> np.ndarray:
    """`function_fingerprint` of θ's canonical representative under the problem's declared input
    symmetry (of θ itself when none is declared): equal for points related by the full group."""
    from .symmetry import function_fingerprint

    sym = getattr(problem, "symmetry", None)
    if sym is None:
        return function_fingerprint(problem, theta, **fingerprint_options)
    canon = canonical_input(problem.model, problem.full_theta(theta), sym)
    if problem.free is not None and not np.allclose(canon[problem.frozen_mask],
                                                    np.asarray(problem.frozen_base)[problem.frozen_mask],
                                                    rtol=0, atol=1e-12):
        # The representative moved frozen entries (hidden neurons of unequal frozen output weights were
        # reordered): fall back to the point itself, identified up to the network's own symmetries.
        return function_fingerprint(problem, theta, **fingerprint_options)
    return function_fingerprint(problem, problem.free_theta(canon), **fingerprint_options)
