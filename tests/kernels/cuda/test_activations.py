"""fastbp/kernels/cuda/activations.py against the reference."""
import numpy as np
import pytest
from numba import cuda

from fastbp import reference as ref
from fastbp.kernels.cuda import activations as act_k
from fastbp.spec import ACTIVATIONS

from .support import TOL, dev, rand


HIDDEN = [("linear", 0.0), ("sigmoid", 0.0), ("tanh", 0.0), ("relu", 0.0), ("leaky_relu", 0.1),
          ("elu", 0.7), ("maxout", 3), ("softmax", 0.0), ("exp", 0.0)]


@pytest.mark.parametrize("name,param", HIDDEN)
def test_activations(name, param):
    dtype = np.float64
    rng = np.random.default_rng(1)
    units = 4
    nz = units * (param if name == "maxout" else 1)
    Z = rand(rng, (5, nz), dtype) * 3
    code = ACTIVATIONS[name][0]
    A = cuda.device_array((5, units), dtype)
    act_k.activation_forward(A, dev(Z), code, float(param))
    want = ref.activation_forward(name, Z, param, units)
    np.testing.assert_allclose(A.copy_to_host(), want, **TOL[dtype])
    if name == "softmax":
        return
    dA = rand(rng, (5, units), dtype)
    dZ = cuda.device_array((5, nz), dtype)
    act_k.activation_backward(dZ, dev(dA), dev(Z), dev(want), code, float(param))
    np.testing.assert_allclose(dZ.copy_to_host(), ref.activation_backward(name, dA, Z, want, param, units),
                               **TOL[dtype])
