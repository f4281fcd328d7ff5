"""Bad input fails early, in Python, with an error whose message names the argument at fault."""

import math
import types

import numpy as np
import pytest

import flowtools as ft

MODEL = ft.MLP((1, 2, 1), "tanh", bias=False)
DATA = ft.Dataset(np.linspace(-2.0, 2.0, 10), np.tanh(np.linspace(-2.0, 2.0, 10)))
PROBLEM = ft.Problem(MODEL, DATA, "mse")
THETA = np.array([-0.13, 0.13, 0.16, -0.15])
NAN = math.nan
#: a stand-in GD trajectory (t, θ, L) for the analysis functions
TRAJ = types.SimpleNamespace(t=np.arange(4.0), theta=np.tile(THETA, (4, 1)), loss=np.ones(4),
                             method="gradient_descent")


def gd(*args, **kw):
    return ft.gradient_descent(PROBLEM, *args, **kw)


def gf(*args, **kw):
    return ft.gradient_flow(PROBLEM, *args, **kw)


def _rkc_part(n):
    """An unfinished "rkc" flow whose saved solver state has vectors of length n."""
    state = dict(fy=np.zeros(n), h=np.array(0.1), h_old=np.array(0.1), err_old=np.array(0.5),
                 rejected_last=np.array(False), pi=np.array(True), rho=np.array(3.0), rho_vec=np.ones(n),
                 rho_age=np.array(2))
    return ft.Trajectory(t=np.array([0.0, 0.5]), theta=np.tile(THETA, (2, 1)), loss=np.ones(2),
                         grad_norm=np.ones(2), gen_error=None, status=ft.Status.TIME_LIMIT, message="",
                         stats={}, method="gradient_flow", meta=dict(solver="rkc"), solver_state=state)


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
    ("unknown population method", lambda: ft.GaussianQuadrature.build(1, "simpson"), ValueError,
     r"method='simpson'"),
    # population loss (flowtools.gaussian, GaussianInputs)
    ("population_risk deep student", lambda: ft.population_risk(ft.MLP((3, 2, 2, 1)), ft.MLP((3, 2, 2, 1)).init(0),
                                                               ft.MLP((3, 2, 1)), ft.MLP((3, 2, 1)).init(0)),
     ValueError, r"student must be a depth-2 MLP"),
    ("population_risk widths differ", lambda: ft.population_risk(ft.MLP((3, 2, 1)), ft.MLP((3, 2, 1)).init(0),
                                                                 ft.MLP((4, 2, 1)), ft.MLP((4, 2, 1)).init(0)),
     ValueError, r"must share\s+d_in and d_out"),
    ("population_risk unknown method", lambda: ft.population_risk(MODEL, THETA, MODEL, THETA, method="mc"),
     ValueError, r"method='mc'"),
    ("population_risk n_nodes < 2", lambda: ft.population_risk(MODEL, THETA, MODEL, THETA, n_nodes=1),
     ValueError, r"n_nodes"),
    ("GaussianInputs callable teacher", lambda: ft.GaussianInputs(np.sin), TypeError, r"teacher must be"),
    ("GaussianInputs deep teacher", lambda: ft.GaussianInputs((ft.MLP((3, 2, 2, 1)), ft.MLP((3, 2, 2, 1)).init(0))),
     ValueError, r"teacher must be a depth-2 MLP"),
    ("GaussianInputs n_probe 0", lambda: ft.GaussianInputs((MODEL, THETA), n_probe=0), ValueError, r"n_probe"),
    ("GaussianInputs deep student", lambda: ft.Problem(ft.MLP((1, 2, 2, 1)), ft.GaussianInputs((MODEL, THETA))),
     ValueError, r"depth-2 MLP student"),
    ("GaussianInputs cross-entropy", lambda: ft.Problem(ft.MLP((1, 2, 2)), ft.GaussianInputs(
        (ft.MLP((1, 2, 2)), ft.MLP((1, 2, 2)).init(0))), "cross_entropy"), ValueError, r"supports loss"),
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
    ("cross-entropy labels out of range",
     lambda: ft.Problem(ft.MLP((1, 2, 3)), ft.Dataset([0.0, 1.0], [0, 3]), "cross_entropy"), ValueError,
     r"data.y holds integer class labels.*0 … 2.*row 1 is 3\b"),
    ("cross-entropy labels not integers",
     lambda: ft.Problem(ft.MLP((1, 2, 3)), ft.Dataset([0.0, 1.0], [0, 0.5]), "cross_entropy"), ValueError,
     r"integer class labels"),
    ("cross-entropy rows not probabilities",
     lambda: ft.Problem(ft.MLP((1, 2, 2)), ft.Dataset([0.0, 1.0], [[1.0, 1.0], [0.0, 1.0]]), "cross_entropy"),
     ValueError, r"class probabilities"),
    ("cross-entropy with one output", lambda: ft.Problem(MODEL, DATA, "cross_entropy"), ValueError,
     r"cross_entropy' needs a model with d_out ≥ 2"),
    ("weight_decay negative", lambda: ft.Problem(MODEL, DATA, weight_decay=-0.1), ValueError,
     r"weight_decay must be a finite number ≥ 0"),
    ("weight_decay NaN", lambda: ft.Problem(MODEL, DATA, weight_decay=NAN), ValueError, r"weight_decay"),
    ("weight_decay not a number", lambda: ft.Problem(MODEL, DATA, weight_decay="big"), ValueError,
     r"weight_decay"),
    ("frozen mask wrong shape",
     lambda: ft.Problem(MODEL, DATA, frozen=np.array([True, False]), frozen_at=THETA), ValueError, r"frozen mask must be a boolean array of shape \(4,\)"),
    ("frozen mask wrong dtype",
     lambda: ft.Problem(MODEL, DATA, frozen=np.array([0.0, 1.0, 0.0, 0.0]), frozen_at=THETA), ValueError,
     r"frozen must be a boolean mask"),
    ("frozen index out of range", lambda: ft.Problem(MODEL, DATA, frozen=np.array([4]), frozen_at=THETA),
     ValueError, r"frozen indices must lie in \[0, 4\)"),
    ("frozen unknown group", lambda: ft.Problem(MODEL, DATA, frozen="W3", frozen_at=THETA), ValueError,
     r"frozen group 'W3'.*W1"),
    ("frozen everything", lambda: ft.Problem(MODEL, DATA, frozen=["W1", "W2"], frozen_at=THETA), ValueError,
     r"leave at least one free"),
    ("frozen without frozen_at", lambda: ft.Problem(MODEL, DATA, frozen="W2"), ValueError,
     r"frozen needs frozen_at"),
    ("frozen_at wrong length", lambda: ft.Problem(MODEL, DATA, frozen="W2", frozen_at=THETA[:3]), ValueError,
     r"frozen_at must be a flat vector of length 4"),
    ("own model wrong output shape",
     lambda: ft.Problem.from_function(lambda th, x: x @ th[:2].reshape(1, 2), 2, DATA), ValueError,
     r"fn\(theta, x\) must return outputs of shape \(n, d_out\)"),
    ("own model fails to trace", lambda: ft.FunctionModel(lambda th, x: th[:3] @ x.T, 3, 1, 1), ValueError,
     r"fn\(theta, x\) failed for theta of shape \(3,\)"),
    ("own model not callable", lambda: ft.FunctionModel("f", 3, 1, 1), TypeError, r"fn must be a callable"),
    ("test_data wrong width",
     lambda: ft.Problem(MODEL, DATA, test_data=ft.Dataset(np.zeros((3, 2)), np.zeros(3))), ValueError, r"test_data has d_in=2"),
    ("test loss without a test set", lambda: PROBLEM.test_loss(THETA), ValueError, r"test_data=Dataset"),
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
    # long runs
    ("flow time_limit zero", lambda: gf(THETA, 1.0, time_limit=0.0), ValueError, r"time_limit must be"),
    ("GD time_limit negative", lambda: gd(THETA, 0.1, 10, time_limit=-1.0), ValueError, r"time_limit"),
    ("checkpoint_every zero", lambda: gd(THETA, 0.1, 10, checkpoint_every=0.0), ValueError,
     r"checkpoint_every"),
    ("time_limit with a diffrax solver", lambda: gf(THETA, 1.0, solver="kvaerno5", time_limit=5.0),
     ValueError, r"time_limit and checkpoint need .*solver='bdf'"),
    ("RKC state of another problem", lambda: gf(None, 1.0, solver="rkc", resume=_rkc_part(3)), ValueError,
     r"this RKC solver state does not fit a problem with 4 parameters"),
    ("cache size not a size", lambda: ft.enable_compilation_cache(max_size="lots"), ValueError,
     r"max_size must be a size such as 500M or 2G"),
    ("cache size zero", lambda: ft.enable_compilation_cache(max_size=0), ValueError,
     r"max_size must be positive .*FLOWTOOLS_CACHE=0"),
    ("flow without theta0", lambda: gf(None, 1.0), TypeError, r"needs theta0 \(or resume="),
    ("GD without theta0", lambda: gd(None, 0.1, 10), TypeError, r"needs theta0 \(or resume="),
    ("resume a GD run as a flow", lambda: gf(None, 1.0, resume=gd(THETA, 0.1, 2)), ValueError,
     r"resume must be a gradient_flow Trajectory"),
    ("resume a flow as GD", lambda: gd(None, 0.1, 2, resume=gf(THETA, 0.5)), ValueError,
     r"resume must be a gradient_descent Trajectory"),
    # ensembles
    ("run_ensemble unknown method", lambda: ft.run_ensemble("adam", PROBLEM, THETA[None]), ValueError,
     r"method='adam' is not supported"),
    ("run_ensemble thetas wrong width",
     lambda: ft.run_ensemble("gradient_flow", PROBLEM, np.zeros((3, 5)), t1=1.0), ValueError,
     r"thetas must have shape \(batch, 4\)"),
    ("run_ensemble unknown option",
     lambda: ft.run_ensemble("gradient_descent", PROBLEM, THETA[None], batched=True, lr=0.1, steps=1,
                             momentum=0.9), TypeError, r"momentum"),
    # itineraries and their landscape helpers
    ("itinerary unknown refine option",
     lambda: ft.itinerary(PROBLEM, _short_gd(), refine_options=dict(max_iters=3)), ValueError,
     r"refine_options has unknown option\(s\) \['max_iters'\]"),
    ("itinerary refine not a dict", lambda: ft.itinerary(PROBLEM, _short_gd(), refine_options=[1]), TypeError,
     r"refine_options must be a dict"),
    # checked before the first refinement, which records a failed solve as an unrefined passage
    ("itinerary refine option out of range",
     lambda: ft.itinerary(PROBLEM, _short_gd(), refine_options=dict(rcond=-1e-12)), ValueError,
     r"refine_options: rcond must be a finite non-negative number"),
    ("itinerary refine options in conflict",
     lambda: ft.itinerary(PROBLEM, _short_gd(), refine_options=dict(dense_loop="host", corrector=True)),
     ValueError, r"refine_options: dense_loop='host' .* corrector=True"),
    ("itinerary time_limit zero", lambda: ft.itinerary(PROBLEM, _short_gd(), time_limit=0.0), ValueError,
     r"time_limit must be"),
    ("itinerary time_limit unknown word", lambda: ft.itinerary(PROBLEM, _short_gd(), time_limit="fast"),
     ValueError, r"time_limit"),
    ("evaluate_states chunk zero",
     lambda: ft.dynamics.evaluate_states(PROBLEM, np.tile(THETA, (3, 1)), chunk=0), ValueError, r"chunk"),
    ("higher_order_test dense_max zero",
     lambda: ft.landscape.higher_order_test(PROBLEM, THETA, dense_max=0), ValueError, r"dense_max"),
    ("itinerary near_gtol negative", lambda: ft.itinerary(PROBLEM, _short_gd(), near_gtol=-1.0), ValueError,
     r"near_gtol must be"),
    ("resolve_trajectory max_jump NaN",
     lambda: ft.landscape.resolve_trajectory(PROBLEM, _short_gd(), max_jump=NAN), ValueError, r"max_jump"),
    ("find_critical_point time_limit negative",
     lambda: ft.find_critical_point(PROBLEM, THETA, time_limit=-1.0), ValueError, r"time_limit must be"),
    ("whitened_dataset too few samples",
     lambda: ft.deep_linear.whitened_dataset(np.eye(3), n=2), ValueError, r"n must be at least d_in=3"),
    ("balanced_init scale zero",
     lambda: ft.deep_linear.balanced_init(ft.MLP((2, 2, 2), "linear", bias=False), 0.0, 0), ValueError,
     r"scale must be"),
    ("function_distances wrong width",
     lambda: ft.landscape.function_distances(PROBLEM, np.zeros((2, 3)), THETA), ValueError,
     r"thetas must have shape \(batch, 4\)"),
    # higher-order test, plateaus, basins, escape-time refinement, closed-form modes
    ("higher_order_test radii negative",
     lambda: ft.landscape.higher_order_test(PROBLEM, THETA, radii=(0.01, -1.0)), ValueError, r"radii\[1\]"),
    ("higher_order_test n_random negative",
     lambda: ft.landscape.higher_order_test(PROBLEM, THETA, n_random=-1), ValueError, r"n_random"),
    ("plateaus threshold zero",
     lambda: ft.plateaus(TRAJ, threshold=0.0), ValueError, r"threshold"),
    ("basin_fractions wrong source", lambda: ft.basin_fractions([1, 2]), TypeError, r"SaddleGraph"),
    ("basin_fractions no runs", lambda: ft.basin_fractions([]), ValueError, r"at least one run"),
    ("wilson k above n", lambda: ft.escape.wilson_interval(3, 2), ValueError, r"k <= n"),
    ("escape_time unknown refine",
     lambda: ft.escape_time(TRAJ, THETA, 1.0, refine="dense"),
     ValueError, r"refine='dense'"),
    ("escape_time refine=solve without problem",
     lambda: ft.escape_time(TRAJ, THETA, 1.0, refine="solve"),
     ValueError, r"refine='solve' needs a gradient-flow"),
    ("mode_time depth 4", lambda: ft.deep_linear.mode_time(1.0, 3.0, 1e-3, 4), ValueError, r"depth=4"),
    ("mode_time u0 above s", lambda: ft.deep_linear.mode_time(1.0, 3.0, 4.0, 2), ValueError, r"u0=4"),
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
    ("sweep group_by unknown key",
     lambda: ft.sweeps.sweep("escape", [{"seed": 0, "width": 2}], "/nonexistent/s", group_by=["widht"]),
     ValueError, r"group_by names \['widht'\]"),
    ("sweep group_by a string", lambda: ft.sweeps.sweep("escape", [{"seed": 0}], "/nonexistent/s", group_by="width"),
     TypeError, r"group_by must be a list of configuration keys"),
    # large-net flow solver, spectra and the digits
    ("rkc max_stages too small", lambda: ft.dynamics.rkc.RKC(max_stages=1), ValueError, r"max_stages"),
    ("rkc lanczos_steps not int", lambda: ft.dynamics.rkc.RKC(lanczos_steps=2.5), ValueError, r"lanczos_steps"),
    ("spectrum max_dense_bytes not positive",
     lambda: ft.hessian_spectrum(PROBLEM, THETA, max_dense_bytes=0), ValueError, r"max_dense_bytes"),
    ("spectrum dense_max not int", lambda: ft.hessian_spectrum(PROBLEM, THETA, dense_max=1.5), TypeError,
     r"dense_max"),
    ("digits split too large", lambda: ft.datasets.load_digits(n_train=1800), ValueError, r"exceeds"),
    ("digits unknown scale", lambda: ft.datasets.load_digits(scale="zscore"), ValueError, r"scale='zscore'"),
]


def _short_gd():
    return ft.gradient_descent(PROBLEM, THETA, 0.01, 5)


@pytest.mark.parametrize("call, error, match", [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_table_is_large_and_unique():
    ids = [case[0] for case in BAD_INPUTS]
    assert len(ids) >= 15 and len(set(ids)) == len(ids)
