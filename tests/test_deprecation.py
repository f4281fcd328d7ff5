"""Renamed arguments, functions and classes keep their old spelling for one release, with a warning that
names the new one; the new spelling never warns."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import warnings

import numpy as np
import pytest

import flowtools as ft
from flowtools import _deprecation
from flowtools.deep_linear import balanced_init, orthogonal_init


@_deprecation.renamed_arguments(old_a="a", old_b="b")
def _f(x, *, a=1, b=2):
    """A function whose keywords were renamed."""
    return x, a, b


class _Thing:
    def to_dict(self):
        return {"x": 1}

    as_dict = _deprecation.renamed_function(to_dict, "as_dict")


def test_renamed_argument_forwards_with_a_warning_naming_the_new_spelling():
    with pytest.warns(FutureWarning, match=r"_f\(old_a=\.\.\.\) is deprecated .* use a= instead"):
        assert _f(0, old_a=5) == (0, 5, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _f(0, a=5, b=6) == (0, 5, 6)
    with pytest.warns(FutureWarning) as record:
        _f(0, old_b=3)
    assert f"removed in flowtools {_deprecation.REMOVED_IN}" in str(record[0].message)


def test_renamed_argument_given_twice_is_a_type_error():
    with pytest.raises(TypeError, match=r"both old_a= and a=.*pass only a="):
        _f(0, old_a=1, a=2)


def test_renamed_argument_keeps_the_new_signature_and_docstring():
    assert list(inspect.signature(_f).parameters) == ["x", "a", "b"]
    assert _f.__doc__ == "A function whose keywords were renamed."
    assert list(inspect.signature(ft.itinerary).parameters)[3] == "refine_options"


def test_renamed_function_forwards():
    with pytest.warns(FutureWarning, match=r"as_dict\(\) is deprecated .* use to_dict\(\) instead"):
        assert _Thing().as_dict() == {"x": 1}
    assert "to_dict" in _Thing.as_dict.__doc__


def test_seed_replaces_key():
    model = ft.MLP((2, 3, 1), "tanh")
    new = np.asarray(model.init(seed=3, scheme="he"))
    with pytest.warns(FutureWarning, match="seed="):
        old = np.asarray(model.init(key=3, scheme="he"))
    np.testing.assert_array_equal(old, new)
    np.testing.assert_array_equal(np.asarray(model.init(3, "he")), new)
    linear = ft.MLP((3, 3, 3), "linear", bias=False)
    for fn in (balanced_init, orthogonal_init):
        with pytest.warns(FutureWarning, match=f"{fn.__name__}\\(key=\\.\\.\\.\\).*seed="):
            old = fn(linear, 0.1, key=7)
        np.testing.assert_array_equal(old, fn(linear, 0.1, seed=7))
        assert not np.array_equal(old, fn(linear, 0.1, seed=8))


def test_gaussian_quadrature_keeps_its_old_name():
    with pytest.warns(FutureWarning, match=r"flowtools.GaussianPopulation is deprecated .* "
                                           r"flowtools.GaussianQuadrature"):
        old = ft.GaussianPopulation
    assert old is ft.GaussianQuadrature
    with pytest.warns(FutureWarning, match="flowtools.data.GaussianQuadrature"):
        from flowtools.data import GaussianPopulation
    assert GaussianPopulation is ft.GaussianQuadrature
    assert "GaussianPopulation" not in ft.__all__ and "GaussianQuadrature" in ft.__all__
    with pytest.raises(AttributeError, match="GaussianPopulations"):
        ft.data.GaussianPopulations  # noqa: B018


def test_lookups_from_inside_the_package_do_not_warn():
    # Modules not yet moved to the new name (problem.py) import the old one; users must not see that.
    scope = {"__name__": "flowtools.somewhere"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec("from flowtools.data import GaussianPopulation", scope)
    assert scope["GaussianPopulation"] is ft.GaussianQuadrature


def test_importing_flowtools_raises_no_future_warning():
    out = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", "import flowtools"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_as_dict_is_the_old_spelling_of_to_dict():
    from flowtools import escape, universality
    classes = [escape.EscapeTime, escape.EscapeDistribution, escape.Plateau, escape.BasinFractions,
               escape.ScalingFit, universality.ActivationClass, universality.ImbalanceCheck]
    for cls in classes:
        assert cls.as_dict.__wrapped__ is cls.to_dict, cls.__name__
    fit = universality.activation_class("tanh")
    with pytest.warns(FutureWarning, match=r"as_dict\(\) is deprecated .* use to_dict\(\)"):
        old = fit.as_dict()
    assert old == fit.to_dict()
    time = escape.EscapeTime(**{f.name: 0.0 for f in dataclasses.fields(escape.EscapeTime)})
    with pytest.warns(FutureWarning, match=r"as_dict\(\) is deprecated"):
        assert time.as_dict() == time.to_dict()
