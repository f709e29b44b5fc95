"""Piano roll with the six expression control lanes under it (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

from daw_bridge.files import write_atomic
from .notes import CONTROL_NAMES


def plot_clip(lanes: list, path: str | Path, title: str = "") -> Path:
    """lanes: [(track name, voice index, notes, controls (n, 6))] -> PNG at `path` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1 + len(CONTROL_NAMES), 1, sharex=True, figsize=(12, 10),
                                gridspec_kw={"height_ratios": [3] + [1] * len(CONTROL_NAMES)})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for lane_index, (track, voice, notes, controls) in enumerate(lanes):
        colour = colours[lane_index % len(colours)]
        for note in notes:
            axes[0].barh(note.pitch, note.duration, left=note.onset, height=0.8, color=colour, alpha=0.8)
        for row, name in enumerate(CONTROL_NAMES):
            for note, value in zip(notes, controls[:, row].tolist()):
                axes[row + 1].plot([note.onset, note.offset], [value, value], color=colour, linewidth=2)
        axes[0].plot([], [], color=colour, label=f"{track} v{voice}")
    axes[0].set_ylabel("pitch")
    axes[0].legend(loc="upper right", fontsize="small")
    axes[0].set_title(title)
    for row, name in enumerate(CONTROL_NAMES):
        axes[row + 1].set_ylim(-0.05, 1.05)
        axes[row + 1].set_ylabel(name.replace("_", "\n"), fontsize="small")
    axes[-1].set_xlabel("seconds")
    figure.tight_layout()
    try:
        return write_atomic(path, lambda tmp: figure.savefig(tmp, dpi=80, format="png"), suffix=".png")
    finally:
        plt.close(figure)
