"""Training curves to PNG (matplotlib, the optional extra `fastbp[plot]`)."""
from __future__ import annotations


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'fastbp[plot]'") from None
    matplotlib.use("Agg")   # files only: no display needed
    import matplotlib.pyplot as plt
    return plt


def plot_history(history, path, title=None):
    """Loss (and validation loss) per epoch on the left, validation score on the right when
    there is one; `history` is History.history (a dict of per-epoch lists)."""
    plt = _pyplot()
    has_score = "val_score" in history
    fig, axes = plt.subplots(1, 2 if has_score else 1, figsize=(10 if has_score else 6, 4), squeeze=False)
    ax = axes[0, 0]
    epochs = range(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], label="training loss")
    if "val_loss" in history:
        ax.plot(epochs, history["val_loss"], label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    if has_score:
        ax = axes[0, 1]
        ax.plot(epochs, history["val_score"], color="C2")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation score (accuracy or R^2)")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
