"""Run under mpiexec by tests/test_distributed.py. Usage: run_distributed.py CASE OUTDIR

equivalence: N ranks with batch b end with the weights of one process with batch N*b on the
             same data order (uneven shards included), identical on every rank; also with
             an l2 penalty, and on sparse (CSR) shards.
output:      only rank 0 prints epoch lines and saves.
failure:     rank 1 gets NaN data: the job must end with an error, not hang.
"""
import json
import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI

import fastbp

case, out = sys.argv[1], Path(sys.argv[2])
comm = MPI.COMM_WORLD
rank, size = comm.rank, comm.size
X, y = fastbp.datasets.make_synthetic(203, 8, 3, seed=0, dtype="float64")   # 203: uneven shards
b = 7
shards = np.array_split(np.arange(len(y)), size)
mine = shards[rank]

if case == "equivalence":
    from scipy import sparse
    Xs = np.where(np.random.default_rng(1).random(X.shape) < 0.3, X, 0.0)   # 70 % zeros
    for name, features, data in (("", {}, X), ("_l2", dict(l2=1e-3), X), ("_sparse", {}, sparse.csr_matrix(Xs))):
        net = fastbp.Network([8, 16, 3], seed=0, dtype="float64", **features)
        net.fit(data[mine], y[mine], epochs=3, batch_size=b, shuffle=False, comm=comm, lr=0.1,
                optimizer="momentum")
        flat = np.concatenate([np.r_[w.ravel(), c] for w, c in net.get_weights()])
        everyone = comm.gather(flat, root=0)
        if rank == 0:
            # one process: step s trains on rows s*b..(s+1)*b of every shard together
            steps = max(-(-len(s) // b) for s in shards)
            batches = [np.concatenate([s[k * b:(k + 1) * b] for s in shards]) for k in range(steps)]
            ref = fastbp.Network([8, 16, 3], seed=0, dtype="float64", **features)
            for e in range(3):
                for i, rows in enumerate(batches):
                    # partial_fit: a batch may hold a single class; one batch, so its order is moot
                    ref.partial_fit(data[rows], y[rows], batch_size=len(rows), lr=0.1,
                                    optimizer=ref.optimizer or "momentum")
            want = np.concatenate([np.r_[w.ravel(), c] for w, c in ref.get_weights()])
            result = {"identical": all(np.array_equal(everyone[0], f) for f in everyone),
                      "max_diff": float(np.abs(everyone[0] - want).max())}
            (out / f"equivalence{name}.json").write_text(json.dumps(result))
elif case == "output":
    net = fastbp.Network([8, 16, 3], seed=0)
    net.fit(X[mine], y[mine], epochs=4, batch_size=b, comm=comm, verbose=2,
            validation_data=(X[mine][:20], y[mine][:20]))
    net.save(out / f"model_rank{rank}.npz")
elif case == "failure":
    Xr = X[mine].copy()
    if rank == 1:
        Xr[0, 0] = np.nan
    fastbp.Network([8, 16, 3], seed=0).fit(Xr, y[mine], epochs=2, batch_size=b, comm=comm)
