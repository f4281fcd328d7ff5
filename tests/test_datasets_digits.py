import numpy as np
import pytest

from flowtools.datasets import digits_arrays, labels_of, load_digits


def test_digits_file_contents():
    x, labels = digits_arrays()
    assert x.shape == (1797, 64) and labels.shape == (1797,)
    assert x.min() == 0 and x.max() == 16 and np.all(x == np.rint(x))
    # Class sizes of the UCI test part as shipped by scikit-learn.
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # The first image is a zero.
    assert labels[0] == 0 and x[0, :8].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_load_digits_split_and_scales():
    train, test = load_digits()
    assert (train.n, test.n, train.d_in, train.d_out) == (1497, 300, 64, 1)
    # Disjoint split covering everything once.
    x, labels = digits_arrays()
    rows = {tuple(r) for r in np.vstack([train.x, test.x]) * 16}
    assert len(rows) <= 1797 and np.isclose(train.x.max(), 1.0)
    assert np.array_equal(np.sort(np.concatenate([labels_of(train), labels_of(test)])), np.sort(labels))
    tr1, _ = load_digits(n_train=100, n_test=50, seed=3, one_hot=True)
    tr2, _ = load_digits(n_train=100, n_test=50, seed=3)
    assert tr1.y.shape == (100, 10) and np.allclose(tr1.y.sum(axis=1), 1)
    assert np.array_equal(labels_of(tr1), labels_of(tr2))
    std, _ = load_digits(scale="standard")
    sd = std.x.std(axis=0)
    assert np.allclose(std.x.mean(axis=0), 0, atol=1e-12)
    assert np.all(np.isclose(sd, 1) | (sd == 0)) and np.sum(sd == 0) >= 1  # constant pixels stay 0
    raw, _ = load_digits(scale="raw", n_train=10, n_test=1)
    assert raw.x.max() > 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_train=1700, n_test=200), "exceeds"),
    (dict(scale="minmax"), "scale"),
    (dict(n_train=0), "n_train"),
])
def test_load_digits_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        load_digits(**kwargs)
