"""The initial plateau of a small-init classifier and its critical set (matrix-free refinement)."""
import jax.numpy as jnp
import numpy as np

import flowtools as ft
from flowtools.datasets import load_digits
from flowtools.landscape.critical import MATRIX_FREE_MIN, find_critical_point
from flowtools.landscape.slow import slow_points


def _digits():
    train, _ = load_digits(n_train=200, n_test=50, seed=0)
    model = ft.MLP([64, 16, 10], activation="tanh")
    return model, ft.Problem(model, train, loss="cross_entropy")


def test_softmax_at_class_frequencies_is_critical_and_newton_minres_reaches_it_from_the_plateau():
    model, problem = _digits()
    assert problem.n_params > MATRIX_FREE_MIN  # the matrix-free path
    freq = np.asarray(problem.y).mean(0)
    entropy = -float(np.sum(freq * np.log(freq)))
    # Closed form: hidden weights and biases 0, output weights 0, b2 = log(class frequencies): the
    # softmax is the class frequencies for every input and every partial derivative vanishes.
    (w1, b1), (w2, _) = model.unflatten(jnp.zeros(problem.n_params))
    star = np.asarray(model.flatten([(w1, b1), (w2, jnp.log(jnp.asarray(freq)))]))
    assert np.linalg.norm(problem.grad(star)) < 1e-14
    assert abs(problem.loss(star) - entropy) < 1e-12

    flow = ft.gradient_flow(problem, np.asarray(model.init(0, "glorot", scale=0.1)), 10.0, rtol=1e-5, atol=1e-7)
    sp = [s for s in slow_points(flow, min_depth=0.05, include_start=True) if not s.at_start][0]
    guess = np.asarray(flow.theta[sp.index])
    assert problem.grad_norm(guess) > 1e-3  # a slow passage, not a critical point
    cp = find_critical_point(problem, guess, method="matrix_free", gtol=1e-12, max_iter=50)
    assert cp.success and cp.attempts[0]["method"] == "newton_minres"
    out = np.asarray(model.apply(jnp.asarray(cp.theta), jnp.asarray(problem.x)))
    p = np.exp(out - out.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, np.broadcast_to(freq, p.shape), atol=1e-10)
    assert abs(problem.loss(cp.theta) - entropy) < 1e-12
    assert cp.signature[0] > 0  # a saddle: the flow leaves the plateau


def test_an_ensemble_of_runs_through_the_plateau_is_one_graph_of_two_nodes():
    """Two seeds: each run's itinerary is the plateau's critical set (refined, loss = the entropy of the
    class frequencies) and then the unfinished end where it fits its labels; both share both nodes."""
    model, problem = _digits()
    freq = np.asarray(problem.y).mean(0)
    entropy = -float(np.sum(freq * np.log(freq)))
    runs = {f"seed{seed}": ft.gradient_flow(problem, np.asarray(model.init(seed, "glorot", scale=0.1)), 300.0,
                                            rtol=1e-5, atol=1e-7) for seed in (0, 1)}
    graph, itins = ft.saddle_graph(problem, runs)
    for itin in itins.values():
        assert itin.terminal == "unfinished"
        assert [v.status for v in itin.visits] == ["converged", "terminal"]
        plateau = itin.visits[0]
        assert abs(plateau.loss - entropy) < 1e-10 and plateau.signature[0] > 0
    assert graph.graph.number_of_nodes() == 2
    assert graph.graph.edges["n0", "n1"]["count"] == 2


def test_cross_entropy_compares_class_probabilities_not_logits():
    """Logits are defined up to a common shift: f and f + c·1 are the same classifier (distance 0),
    and the function compared is softmax(f) (rows summing to 1)."""
    from flowtools.problem import training_outputs

    model, problem = _digits()
    theta = np.asarray(model.init(3, "glorot", scale=0.5))
    (w1, b1), (w2, b2) = model.unflatten(jnp.asarray(theta))
    shifted = np.asarray(model.flatten([(w1, b1), (w2, b2 + 7.0)]))
    assert abs(problem.loss(shifted) - problem.loss(theta)) < 1e-12
    assert ft.function_distance(problem, theta, shifted, n_probe=16) < 1e-12
    p = training_outputs(problem, theta[None])[0]
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    logits = problem.predict(theta, np.asarray(problem.x))
    assert np.all(np.argmax(p, axis=1) == np.argmax(logits, axis=1))
