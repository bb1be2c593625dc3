"""Run under mpiexec by tests/test_distributed.py. Usage: run_distributed.py CASE OUTDIR

equivalence: N ranks with batch b end with the weights of one process with batch N*b on the
             same data order (uneven shards included), identical on every rank; also with
             an l2 penalty, and on sparse (CSR) shards.
output:      only rank 0 prints epoch lines and saves.
failure:     rank 1 gets NaN data: the job must end with an error, not hang.
split:       3 ranks split into a communicator of 2 and one of 1: each group trains as one
             process with its global batch would, apart from the other group.
compiles:    a distributed fit; each rank writes the names of the functions Numba compiled
             for it (none, once the kernel cache holds them).
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


def flat(net):
    return np.concatenate([np.r_[w.ravel(), c] for w, c in net.get_weights()])


def one_process(data, shards, features):
    """The weights one process reaches when step s trains on rows s*b..(s+1)*b of every shard
    together (3 epochs, momentum, lr 0.1)."""
    steps = max(-(-len(s) // b) for s in shards)
    batches = [np.concatenate([s[k * b:(k + 1) * b] for s in shards]) for k in range(steps)]
    ref = fastbp.Network([8, 16, 3], seed=0, dtype="float64", **features)
    for e in range(3):
        for rows in batches:
            # partial_fit: a batch may hold a single class; one batch, so its order is moot
            ref.partial_fit(data[rows], y[rows], batch_size=len(rows), lr=0.1, optimizer=ref.optimizer or "momentum")
    return flat(ref)


def distributed(data, group, shards, features):
    net = fastbp.Network([8, 16, 3], seed=0, dtype="float64", **features)
    rows = shards[group.rank]
    net.fit(data[rows], y[rows], epochs=3, batch_size=b, shuffle=False, comm=group, lr=0.1, optimizer="momentum")
    return flat(net)


if case == "equivalence":
    from scipy import sparse
    Xs = np.where(np.random.default_rng(1).random(X.shape) < 0.3, X, 0.0)   # 70 % zeros
    for name, features, data in (("", {}, X), ("_l2", dict(l2=1e-3), X), ("_sparse", {}, sparse.csr_matrix(Xs))):
        everyone = comm.gather(distributed(data, comm, shards, features), root=0)
        if rank == 0:
            result = {"identical": all(np.array_equal(everyone[0], f) for f in everyone),
                      "max_diff": float(np.abs(everyone[0] - one_process(data, shards, features)).max())}
            (out / f"equivalence{name}.json").write_text(json.dumps(result))
elif case == "split":
    # ranks 0 and 1 train together on a communicator split from the world, rank 2 alone on its own
    group = comm.Split(color=int(rank < 2), key=rank)
    group_shards = np.array_split(np.arange(len(y)), group.size)
    mine_in_group = distributed(X, group, group_shards, {})
    result = {"group": group.size,
              "max_diff": float(np.abs(mine_in_group - one_process(X, group_shards, {})).max())}
    (out / f"split_rank{rank}.json").write_text(json.dumps(result))
elif case == "output":
    net = fastbp.Network([8, 16, 3], seed=0)
    net.fit(X[mine], y[mine], epochs=4, batch_size=b, comm=comm, verbose=2,
            validation_data=(X[mine][:20], y[mine][:20]))
    net.save(out / f"model_rank{rank}.npz")
elif case == "compiles":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # tests/
    from compile_events import compiled
    with compiled() as names:
        fastbp.Network([8, 16, 3], seed=0, dtype="float64").fit(X[mine], y[mine], epochs=2, batch_size=b, comm=comm)
    (out / f"compiles_rank{rank}.json").write_text(json.dumps(names))
elif case == "failure":
    Xr = X[mine].copy()
    if rank == 1:
        Xr[0, 0] = np.nan
    fastbp.Network([8, 16, 3], seed=0).fit(Xr, y[mine], epochs=2, batch_size=b, comm=comm)
