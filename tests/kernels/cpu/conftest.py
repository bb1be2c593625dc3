"""The cpu kernel tests run in both dtypes: one kernel source serves both, and float32 must
stay float32 (no silent float64 promotion)."""

import numpy as np
import pytest


@pytest.fixture(params=[np.float32, np.float64])
def dtype(request):
    return request.param
