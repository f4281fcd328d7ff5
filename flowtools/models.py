"""Multi-layer perceptrons on one flat parameter vector θ.

Flat order (documented, stable): layer by layer, l = 1 … L, first the weight matrix W_l of shape
(h_l, h_{l−1}) in row-major order, then its bias b_l (h_l entries) when layer l has one. Row i of W_l
(with b_l[i]) is the input weight vector of neuron i of layer l; column i of W_{l+1} is its output weight
vector. The output layer is linear.

For the minimal model `MLP((1, 2, 1), "tanh", bias=False)` this gives θ = (w1, w2, v1, v2) with
f(x) = v1 tanh(w1 x) + v2 tanh(w2 x) (Maleknia & Sato, Eq. 1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks, _deprecation
from ._stored_jit import stored_jit
from .activations import Activation, get_activation

__all__ = ["MLP", "LayerSlices", "FunctionModel"]


def _dense(a, W):
    """a @ W.T. For small layers a broadcast multiply-and-sum runs 2–3× faster than XLA's dot on CPU
    (measured on the 1-2-1 minimal model), which matters for millions of GD steps."""
    if W.shape[0] * W.shape[1] <= 256:
        return jnp.sum(a[..., None, :] * W, axis=-1)
    return a @ W.T


@dataclasses.dataclass(frozen=True)
class LayerSlices:
    """Where layer l's weights and bias sit in θ: `W` is (start, stop), `b` is (start, stop) or None."""

    W: tuple[int, int]
    W_shape: tuple[int, int]
    b: tuple[int, int] | None


@dataclasses.dataclass(frozen=True)
class MLP:
    """A fully connected network d_in → h_1 → … → d_out with one activation on the hidden layers.

    **Arguments:**

    - `widths`: (d_in, h_1, …, h_{L−1}, d_out); at least two entries.
    - `activation`: a name from `flowtools.activations.ACTIVATIONS`, an `Activation`, or a callable.
    - `bias`: one bool for every layer, or one per layer (length L = len(widths) − 1).

    The model is immutable and hashable, so jitted functions can treat it as static.
    """

    widths: tuple[int, ...]
    activation: Activation
    bias: tuple[bool, ...]

    def __init__(
        self,
        widths: Sequence[int],
        activation: str | Activation | Callable = "tanh",
        bias: bool | Sequence[bool] = True,
    ):
        if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
            raise TypeError(f"widths must be a sequence of positive ints such as (1, 2, 1), got {widths!r}.")
        if len(widths) < 2:
            raise ValueError(f"widths must have at least 2 entries (d_in, d_out), got {tuple(widths)}.")
        widths = tuple(_checks.positive_int(f"widths[{i}]", w) for i, w in enumerate(widths))
        n_layers = len(widths) - 1
        if isinstance(bias, (bool, np.bool_)):
            bias = (bool(bias),) * n_layers
        else:
            bias = tuple(bool(b) for b in bias)
            if len(bias) != n_layers:
                raise ValueError(
                    f"bias must be one bool or one per layer ({n_layers} for widths={widths}), "
                    f"got {len(bias)} entries."
                )
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "activation", get_activation(activation))
        object.__setattr__(self, "bias", bias)

    # ---------------------------------------------------------------- layout
    @property
    def n_layers(self) -> int:
        """Number of weight layers L (hidden layers + output layer)."""
        return len(self.widths) - 1

    @property
    def d_in(self) -> int:
        return self.widths[0]

    @property
    def d_out(self) -> int:
        return self.widths[-1]

    @property
    def hidden_layers(self) -> range:
        """Indices l = 1 … L−1 of the hidden layers (neurons that have an activation)."""
        return range(1, self.n_layers)

    @property
    def layout(self) -> tuple[LayerSlices, ...]:
        out, start = [], 0
        for l in range(1, self.n_layers + 1):
            shape = (self.widths[l], self.widths[l - 1])
            w = (start, start + shape[0] * shape[1])
            start = w[1]
            b = None
            if self.bias[l - 1]:
                b = (start, start + shape[0])
                start = b[1]
            out.append(LayerSlices(w, shape, b))
        return tuple(out)

    @property
    def n_params(self) -> int:
        last = self.layout[-1]
        return (last.b or last.W)[1]

    @property
    def param_names(self) -> list[str]:
        """Names of the entries of θ in flat order.

        A one-hidden-layer net with scalar input and output and no biases uses the field's names
        w1 … wk (input weights), v1 … vk (output weights); other nets use W{l}[i,j] and b{l}[i].
        """
        if self.n_layers == 2 and self.d_in == 1 and self.d_out == 1 and not any(self.bias):
            k = self.widths[1]
            return [f"w{i + 1}" for i in range(k)] + [f"v{i + 1}" for i in range(k)]
        names = []
        for l, sl in enumerate(self.layout, start=1):
            rows, cols = sl.W_shape
            names += [f"W{l}[{i},{j}]" for i in range(rows) for j in range(cols)]
            if sl.b is not None:
                names += [f"b{l}[{i}]" for i in range(rows)]
        return names

    def unflatten(self, theta) -> list[tuple[jax.Array, jax.Array | None]]:
        """Split θ into [(W_1, b_1), …, (W_L, b_L)] (b_l is None for layers without bias)."""
        layers = []
        for sl in self.layout:
            W = theta[sl.W[0] : sl.W[1]].reshape(sl.W_shape)
            b = None if sl.b is None else theta[sl.b[0] : sl.b[1]]
            layers.append((W, b))
        return layers

    def flatten(self, layers) -> jax.Array:
        """Inverse of `unflatten`."""
        if len(layers) != self.n_layers:
            raise ValueError(f"layers must have {self.n_layers} (W, b) pairs, got {len(layers)}.")
        parts = []
        for l, ((W, b), sl) in enumerate(zip(layers, self.layout), start=1):
            W = jnp.asarray(W)
            if W.shape != sl.W_shape:
                raise ValueError(f"layers[{l - 1}] W has shape {W.shape}, expected {sl.W_shape}.")
            parts.append(W.reshape(-1))
            if sl.b is not None:
                if b is None or jnp.shape(b) != (sl.W_shape[0],):
                    raise ValueError(f"layers[{l - 1}] needs a bias of shape ({sl.W_shape[0]},).")
                parts.append(jnp.asarray(b))
        return jnp.concatenate(parts)

    def neuron_indices(self, layer: int, neuron: int) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of hidden neuron `neuron` of hidden layer `layer` (1-based layer).

        Returns (incoming, outgoing): its row of W_layer followed by its bias b_layer[neuron] when the
        layer has one, and its column of W_{layer+1}.
        """
        if layer not in self.hidden_layers:
            raise ValueError(f"layer must be a hidden layer in {list(self.hidden_layers)}, got {layer}.")
        if not 0 <= neuron < self.widths[layer]:
            raise ValueError(f"neuron must be in [0, {self.widths[layer]}) for layer {layer}, got {neuron}.")
        sl, nxt = self.layout[layer - 1], self.layout[layer]
        cols = sl.W_shape[1]
        incoming = list(range(sl.W[0] + neuron * cols, sl.W[0] + (neuron + 1) * cols))
        if sl.b is not None:
            incoming.append(sl.b[0] + neuron)
        n_rows, n_cols = nxt.W_shape
        outgoing = [nxt.W[0] + r * n_cols + neuron for r in range(n_rows)]
        return np.array(incoming), np.array(outgoing)

    # --------------------------------------------------------------- forward
    def apply(self, theta, x, *, return_hidden: bool = False):
        """Network outputs f(x; θ) for inputs x of shape (n, d_in); returns (n, d_out).

        With `return_hidden=True` also returns the list of (pre-activation h_l, activation a_l) of the
        hidden layers, as used by the norm-imbalance identity of the saddle-escape theory.
        """
        sigma = self.activation.fn
        a = x
        hidden = []
        layers = self.unflatten(theta)
        for l, (W, b) in enumerate(layers, start=1):
            h = _dense(a, W)
            if b is not None:
                h = h + b
            if l < self.n_layers:
                a = sigma(h)
                hidden.append((h, a))
            else:
                a = h
        return (a, hidden) if return_hidden else a

    __call__ = apply

    # ---------------------------------------------------------------- init
    @_deprecation.renamed_arguments(key="seed")
    def init(
        self,
        seed,
        scheme: str = "normal",
        *,
        scale: float = 1.0,
        layer_scales: Sequence[float] | None = None,
    ) -> jax.Array:
        """A random θ.

        **Arguments:**

        - `seed`: an int seed or a `jax.random` key.
        - `scheme`: "normal" (every weight and bias N(0, scale²)), "he" (weights N(0, 2/fan_in), zero
          biases), "lecun" (weights N(0, 1/fan_in), zero biases: w_i ~ N(0, I/d) in the first layer, the
          initialisation of Safran & Shamir 2018) or "glorot" (weights N(0, 2/(fan_in + fan_out)), zero
          biases).
        - `scale`: the standard deviation for "normal"; a global multiplier for "he" and "glorot".
        - `layer_scales`: one factor per layer multiplying that layer's weights and bias, e.g. ε on
          the r bottleneck layers of the saddle-escape setting.
        """
        scheme = _checks.choice("scheme", scheme, ["normal", "he", "lecun", "glorot"])
        scale = _checks.positive("scale", scale)
        if layer_scales is None:
            layer_scales = (1.0,) * self.n_layers
        layer_scales = tuple(float(s) for s in layer_scales)
        if len(layer_scales) != self.n_layers:
            raise ValueError(
                f"layer_scales must have one entry per layer ({self.n_layers}), got {len(layer_scales)}."
            )
        key = jax.random.PRNGKey(seed) if isinstance(seed, (int, np.integer)) else seed
        factors, plan = [], []
        for l, sl in enumerate(self.layout):
            fan_out, fan_in = sl.W_shape
            if scheme == "normal":
                std = scale
            elif scheme == "he":
                std = scale * np.sqrt(2.0 / fan_in)
            elif scheme == "lecun":
                std = scale * np.sqrt(1.0 / fan_in)
            else:
                std = scale * np.sqrt(2.0 / (fan_in + fan_out))
            factors.append(float(std * layer_scales[l]))
            plan.append((sl.W_shape, None if sl.b is None else "normal" if scheme == "normal" else "zeros"))
        factors, plan = np.asarray(factors, dtype=np.float64), tuple(plan)
        if isinstance(key, jax.Array) and key.dtype == jnp.uint32:  # a raw key (typed keys: eagerly)
            # One stored kernel for the whole draw: a new shape loads it instead of compiling the
            # split, the normals, the scaling and the concatenation eagerly, with the same bits.
            return _draw_stored(key, jax.device_put(factors), plan)
        return _draw(key, factors, plan)

    def __repr__(self):
        bias = self.bias[0] if len(set(self.bias)) == 1 else list(self.bias)
        return f"MLP(widths={self.widths}, activation={self.activation.name!r}, bias={bias})"


class FunctionModel:
    """A model given as any JAX function f(θ, x) of a flat parameter vector θ and inputs x of shape
    (n, d_in), returning outputs of shape (n, d_out) (or (n,) when d_out = 1).

    **Arguments:**

    - `fn`: the function, written in jax.numpy so that it can be differentiated twice and jitted.
    - `n_params`: the length of θ.
    - `d_in`, `d_out`: input and output widths.
    - `name`: a label for reprs and result files.

    The output shape is checked once at construction (by tracing, no computation). The model is
    hashable (by the identity of `fn`), so jitted code treats it as static. Symmetry-aware tools
    (`canonical_form`, `reduce_network`, splitting) need an `MLP` and say so.
    Build one from an equinox module with `FunctionModel.from_equinox`.
    """

    __slots__ = ("fn", "n_params", "d_in", "d_out", "name")

    def __init__(self, fn: Callable, n_params: int, d_in: int, d_out: int, name: str | None = None):
        if not callable(fn):
            raise TypeError(f"fn must be a callable f(theta, x), got {type(fn).__name__}.")
        n_params = _checks.positive_int("n_params", n_params)
        d_in = _checks.positive_int("d_in", d_in)
        d_out = _checks.positive_int("d_out", d_out)
        theta = jax.ShapeDtypeStruct((n_params,), jnp.float64)
        x = jax.ShapeDtypeStruct((3, d_in), jnp.float64)
        try:
            out = jax.eval_shape(fn, theta, x)
        except Exception as err:  # the user's function could not be traced at these shapes
            raise ValueError(f"fn(theta, x) failed for theta of shape ({n_params},) and x of shape "
                             f"(3, {d_in}): {type(err).__name__}: {err}") from None
        shape = getattr(out, "shape", None)
        if shape not in ((3, d_out),) + (((3,),) if d_out == 1 else ()):
            raise ValueError(f"fn(theta, x) must return outputs of shape (n, d_out) = (3, {d_out}) for "
                             f"x of shape (3, {d_in}); it returned {shape}. Check d_out, or reshape "
                             "the output inside fn.")
        if not jnp.issubdtype(out.dtype, jnp.floating):
            raise ValueError(f"fn(theta, x) must return floating-point outputs, got dtype {out.dtype}.")
        for k, v in (("fn", fn), ("n_params", n_params), ("d_in", d_in), ("d_out", d_out),
                     ("name", name or getattr(fn, "__name__", "function"))):
            object.__setattr__(self, k, v)

    def __setattr__(self, key, value):
        raise AttributeError("FunctionModel is immutable.")

    @classmethod
    def from_equinox(cls, module, d_in: int, d_out: int, *, batched: bool = False, name: str | None = None):
        """(model, θ0) from an equinox module: its floating-point arrays are raveled into θ
        (`jax.flatten_util.ravel_pytree`), everything else is held fixed.

        The module maps one input of shape (d_in,) to (d_out,) (or a scalar when d_out = 1), as
        `eqx.nn` layers do; it is vmapped over the samples. Pass `batched=True` if it takes the whole
        (n, d_in) batch itself.
        """
        import equinox as eqx
        from jax.flatten_util import ravel_pytree

        params, static = eqx.partition(module, eqx.is_inexact_array)
        theta0, unravel = ravel_pytree(params)

        def fn(theta, x):
            net = eqx.combine(unravel(theta), static)
            out = net(x) if batched else jax.vmap(net)(x)
            return jnp.reshape(out, (x.shape[0], d_out))

        model = cls(fn, theta0.size, d_in, d_out, name or type(module).__name__)
        return model, jnp.asarray(theta0, dtype=jnp.float64)

    def apply(self, theta, x):
        """Outputs f(x; θ), shape (n, d_out)."""
        return jnp.reshape(self.fn(theta, x), (x.shape[0], self.d_out))

    __call__ = apply

    def __eq__(self, other):
        return isinstance(other, FunctionModel) and other.fn is self.fn and \
            (other.n_params, other.d_in, other.d_out) == (self.n_params, self.d_in, self.d_out)

    def __hash__(self):
        return hash((id(self.fn), self.n_params, self.d_in, self.d_out))

    def __repr__(self):
        return f"FunctionModel({self.name!r}, n_params={self.n_params}, d_in={self.d_in}, d_out={self.d_out})"


def _draw(key, factors, plan):
    """`MLP.init`'s flat θ: layer l's W is factors[l]·N(0, 1) from the key's split 2l, its bias
    factors[l]·N(0, 1) from split 2l + 1, or zeros (`plan`: (W shape, None | "normal" | "zeros") per
    layer)."""
    keys = jax.random.split(key, 2 * len(plan))

    def scaled_normal(l, k, shape):
        # The barrier keeps XLA from fusing the scaling into the sampler, which changes the last bits.
        return factors[l] * jax.lax.optimization_barrier(jax.random.normal(k, shape, dtype=jnp.float64))

    parts = []
    for l, (shape, bias) in enumerate(plan):
        parts.append(scaled_normal(l, keys[2 * l], shape).reshape(-1))
        if bias == "normal":
            parts.append(scaled_normal(l, keys[2 * l + 1], (shape[0],)))
        elif bias == "zeros":
            parts.append(jnp.zeros(shape[0], dtype=jnp.float64))
    return jnp.concatenate(parts)


_draw_stored = stored_jit(_draw)
