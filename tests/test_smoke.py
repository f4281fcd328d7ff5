import numpy as np

import flowtools as ft


def test_quickstart_runs(minimal_mse):
    theta0 = np.array([-0.13, 0.13, 0.16, -0.15])
    gd = ft.gradient_descent(minimal_mse, theta0, lr=0.01, steps=1000)
    gf = ft.gradient_flow(minimal_mse, theta0, t1=10.0)
    assert gd.status == ft.Status.T1_REACHED and gf.status == ft.Status.T1_REACHED
    # Same start, same time: GD at small η is close to the flow.
    assert np.max(np.abs(gd.final_theta - gf.final_theta)) < 1e-2
