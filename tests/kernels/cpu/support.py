"""Shared by the cpu kernel tests: random arrays, and the layer shapes every dense path runs on."""


def rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


SHAPES = [(1, 1, 1), (3, 5, 2), (17, 33, 9), (64, 7, 40), (9, 70, 66), (37, 130, 71), (41, 401, 390),
          (301, 130, 120), (301, 200, 9)]
