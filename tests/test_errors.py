"""Bad input fails early, in Python, with an error whose message names the argument at fault."""

import math

import numpy as np
import pytest

import flowtools as ft

MODEL = ft.MLP((1, 2, 1), "tanh", bias=False)
DATA = ft.Dataset(np.linspace(-2.0, 2.0, 10), np.tanh(np.linspace(-2.0, 2.0, 10)))
PROBLEM = ft.Problem(MODEL, DATA, "mse")
THETA = np.array([-0.13, 0.13, 0.16, -0.15])
NAN = math.nan


def gd(*args, **kw):
    return ft.gradient_descent(PROBLEM, *args, **kw)


def gf(*args, **kw):
    return ft.gradient_flow(PROBLEM, *args, **kw)


# (id, call, exception, regular expression the message must match)
BAD_INPUTS = [
    # models
    ("widths too short", lambda: ft.MLP((3,)), ValueError, r"widths must have at least 2 entries"),
    ("widths not a sequence", lambda: ft.MLP("121"), TypeError, r"widths must be a sequence"),
    ("negative width", lambda: ft.MLP((1, -2, 1)), ValueError, r"widths\[1\]"),
    ("zero width", lambda: ft.MLP((1, 2, 0)), ValueError, r"widths\[2\]"),
    ("fractional width", lambda: ft.MLP((1, 2.5, 1)), TypeError, r"widths\[1\]"),
    ("unknown activation", lambda: ft.MLP((1, 2, 1), "swish2"), ValueError,
     r"activation='swish2' is unknown"),
    ("activation of wrong type", lambda: ft.MLP((1, 2, 1), 3), TypeError, r"activation must be"),
    ("bias list wrong length", lambda: ft.MLP((1, 2, 1), bias=[True]), ValueError, r"bias must be one bool"),
    ("unknown init scheme", lambda: MODEL.init(0, "xavier"), ValueError, r"scheme='xavier'"),
    ("init scale not positive", lambda: MODEL.init(0, scale=0.0), ValueError, r"scale must be"),
    ("layer_scales wrong length", lambda: MODEL.init(0, layer_scales=(1.0,)), ValueError, r"layer_scales"),
    ("flatten wrong layer count", lambda: MODEL.flatten([(np.zeros((2, 1)), None)]), ValueError, r"layers"),
    ("neuron_indices not hidden", lambda: MODEL.neuron_indices(2, 0), ValueError, r"layer must be"),
    # data
    ("NaN in x", lambda: ft.Dataset([0.0, NAN, 1.0], [1.0, 2.0, 3.0]), ValueError, r"x contains 1 NaN"),
    ("Inf in y", lambda: ft.Dataset([0.0, 1.0], [1.0, math.inf]), ValueError, r"y contains 1 NaN or Inf"),
    ("x/y lengths differ", lambda: ft.Dataset(np.zeros(5), np.zeros(4)), ValueError,
     r"x and y .* same number"),
    ("empty data set", lambda: ft.Dataset(np.zeros(0), np.zeros(0)), ValueError, r"x and y must contain"),
    ("load_xy missing file", lambda: ft.load_xy("/nonexistent/flowtools.dat"), FileNotFoundError, r"path="),
    ("teacher noise negative", lambda: ft.teacher_dataset((MODEL, THETA), 10, noise=-0.1), ValueError,
     r"noise must be"),
    ("teacher theta wrong length", lambda: ft.teacher_dataset((MODEL, THETA[:3]), 10), ValueError,
     r"theta must be a flat vector of length 4"),
    ("callable teacher without d_in", lambda: ft.teacher_dataset(np.sin, 10), ValueError,
     r"d_in is required"),
    ("unknown population method", lambda: ft.GaussianPopulation.build(1, "simpson"), ValueError,
     r"method='simpson'"),
    # problem
    ("unknown loss convention", lambda: ft.Problem(MODEL, DATA, "l1"), ValueError, r"loss='l1'"),
    ("model/data dimension mismatch", lambda: ft.Problem(ft.MLP((2, 3, 1)), DATA), ValueError,
     r"data has d_in=1.*model expects\s+d_in=2"),
    ("model not an MLP", lambda: ft.Problem("mlp", DATA), TypeError, r"model must be a flowtools.MLP"),
    ("data not a Dataset", lambda: ft.Problem(MODEL, (DATA.x, DATA.y)), TypeError, r"data must be"),
    ("theta wrong length", lambda: PROBLEM.loss(np.zeros(5)), ValueError,
     r"theta must be a flat vector of length 4"),
    ("hvp vector wrong length", lambda: PROBLEM.hvp(THETA, np.zeros(3)), ValueError,
     r"v must be a flat vector"),
    ("predict x wrong width", lambda: PROBLEM.predict(THETA, np.zeros((3, 2))), ValueError,
     r"x must have shape"),
    # gradient descent and SGD
    ("theta0 wrong length", lambda: gd(THETA[:3], 0.1, 10), ValueError,
     r"theta0 must be a flat vector of length 4"),
    ("theta0 with NaN", lambda: gd([0.1, NAN, 0.2, 0.3], 0.1, 10), ValueError, r"theta0 contains 1 NaN"),
    ("theta0 not numbers", lambda: gd(list("abcd"), 0.1, 10), TypeError, r"theta0"),
    ("lr zero", lambda: gd(THETA, 0.0, 10), ValueError, r"lr must be a positive"),
    ("lr negative", lambda: gd(THETA, -0.1, 10), ValueError, r"lr must be a positive"),
    ("lr NaN", lambda: gd(THETA, NAN, 10), ValueError, r"lr must be a positive"),
    ("steps negative", lambda: gd(THETA, 0.1, -1), ValueError, r"steps must be an integer"),
    ("steps fractional", lambda: gd(THETA, 0.1, 2.5), TypeError, r"steps must be an integer"),
    ("GD gtol not positive", lambda: gd(THETA, 0.1, 10, gtol=0.0), ValueError, r"gtol"),
    ("GD max_norm not positive", lambda: gd(THETA, 0.1, 10, max_norm=-1.0), ValueError, r"max_norm"),
    ("record_steps beyond steps", lambda: gd(THETA, 0.1, 5, record_steps=[7]), ValueError,
     r"record_steps must lie in \[0, steps=5\]"),
    ("n_records too small", lambda: gd(THETA, 0.1, 5, n_records=1), ValueError, r"n_records"),
    ("batch_size too large", lambda: ft.sgd(PROBLEM, THETA, 0.1, 10, batch_size=11), ValueError,
     r"batch_size=11 exceeds the number of samples 10"),
    ("batch_size zero", lambda: ft.sgd(PROBLEM, THETA, 0.1, 10, batch_size=0), ValueError, r"batch_size"),
    ("seed negative", lambda: ft.sgd(PROBLEM, THETA, 0.1, 10, seed=-1), ValueError, r"seed"),
    # gradient flow
    ("flow theta0 wrong length", lambda: gf(np.zeros(2), 1.0), ValueError, r"theta0"),
    ("rtol zero", lambda: gf(THETA, 1.0, rtol=0.0), ValueError, r"rtol must be"),
    ("atol negative", lambda: gf(THETA, 1.0, atol=-1e-10), ValueError, r"atol must be"),
    ("unknown solver", lambda: gf(THETA, 1.0, solver="rk99"), ValueError, r"solver='rk99'"),
    ("solver of wrong type", lambda: gf(THETA, 1.0, solver=3), TypeError, r"solver must be"),
    ("flow gtol not positive", lambda: gf(THETA, 1.0, gtol=-1.0), ValueError, r"gtol"),
    ("t1 before t0", lambda: gf(THETA, 1.0, t0=2.0), ValueError, r"t1=1.0 must be greater than t0=2.0"),
    ("t1 negative", lambda: gf(THETA, -5.0), ValueError, r"t1 must be"),
    ("t1=None without gtol", lambda: gf(THETA, None), ValueError, r"t1 is infinite.*gtol"),
    ("max_steps zero", lambda: gf(THETA, 1.0, max_steps=0), ValueError, r"max_steps"),
    ("save_ts decreasing", lambda: gf(THETA, 1.0, save_ts=[0.5, 0.2]), ValueError,
     r"save_ts must be increasing"),
    ("save_ts beyond t1", lambda: gf(THETA, 1.0, save_ts=[0.5, 2.0]), ValueError,
     r"save_ts .* lie in \[t0, t1\]"),
    ("pcoeff NaN", lambda: gf(THETA, 1.0, pcoeff=NAN), ValueError, r"pcoeff"),
    # ensembles
    ("run_ensemble unknown method", lambda: ft.run_ensemble("adam", PROBLEM, THETA[None]), ValueError,
     r"method='adam' is not supported"),
    ("run_ensemble thetas wrong width",
     lambda: ft.run_ensemble("gradient_flow", PROBLEM, np.zeros((3, 5)), t1=1.0), ValueError,
     r"thetas must have shape \(batch, 4\)"),
    ("run_ensemble unknown option",
     lambda: ft.run_ensemble("gradient_descent", PROBLEM, THETA[None], batched=True, lr=0.1, steps=1,
                             momentum=0.9), TypeError, r"momentum"),
    # sweeps
    ("sweep configuration without seed", lambda: ft.sweeps.sweep("flow_itinerary", [{"width": 2}], "/nonexistent/s"),
     ValueError, r"configurations\[0\] needs a non-negative integer 'seed'"),
    ("sweep configuration value not scalar",
     lambda: ft.sweeps.sweep("flow_itinerary", [{"seed": 0, "w": [1, 2]}], "/nonexistent/s"), TypeError,
     r"configurations\[0\]\['w'\]"),
    ("sweep duplicate configuration",
     lambda: ft.sweeps.sweep("flow_itinerary", [{"seed": 0}, {"seed": 0}], "/nonexistent/s"), ValueError,
     r"the same configuration twice"),
    ("sweep unknown task", lambda: ft.sweeps.sweep("flow_itnerary", [{"seed": 0}], "/nonexistent/s"),
     ValueError, r"task='flow_itnerary' is unknown"),
    ("sweep negative workers", lambda: ft.sweeps.sweep("escape", [{"seed": 0}], "/nonexistent/s", workers=-1),
     ValueError, r"workers must be"),
    ("grid empty axis", lambda: ft.sweeps.grid(seed=[]), ValueError, r"axis 'seed' is empty"),
]


@pytest.mark.parametrize("call, error, match", [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_table_is_large_and_unique():
    ids = [case[0] for case in BAD_INPUTS]
    assert len(ids) >= 15 and len(set(ids)) == len(ids)
