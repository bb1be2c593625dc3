"""numba.cuda kernels, one file per CPU kernel file (same names, same argument order), and
CudaBackend, which keeps data, parameters, gradients and optimizer state on the device for a
whole fit. Needs the optional extra `fastbp[cuda]` (numba-cuda) and an NVIDIA GPU, or Numba's
CUDA simulator (NUMBA_ENABLE_CUDASIM=1) for testing.

  dense.py        dense_forward / dense_backward over one tiled shared-memory GEMM
  activations.py  activation_forward / activation_backward
  losses.py       loss_rows, batch_loss, loss_backward
  regularize.py   dropout_forward, batchnorm_forward / inference / backward, penalties
  optim.py        grad_norm, scale, optimizer_update
  driver.py       gather_rows, whole-network forward/backward, a training step
  backend.py      CudaBackend: the numpy backend's methods on the device
"""
