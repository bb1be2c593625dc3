"""Optimizer update kernels over the flat parameter vector (one loop over every parameter)."""
from numba import prange

from ...config import kernel


@kernel
def sgd_update(params, grads, lr):
    """Plain gradient descent: params -= lr * grads."""
    step = params.dtype.type(lr)
    for i in prange(params.shape[0]):
        params[i] -= step * grads[i]
