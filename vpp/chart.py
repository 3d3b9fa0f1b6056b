"""A PNG chart of a site schedule: prices, power per device, state of charge."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vpp.site import SiteSchedule

__all__ = ["plot_schedule"]


def plot_schedule(
    schedule: SiteSchedule,
    path: Path,
    *,
    consumption_price: np.ndarray | None = None,
    baseline: SiteSchedule | None = None,
    title: str = "vpp schedule",
) -> Path:
    """Write a three-panel PNG (price, power, SoC) and return its path."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    horizon = schedule.horizon
    steps = [horizon.at(k) for k in range(horizon.steps + 1)]
    fig, (ax_price, ax_power, ax_soc) = plt.subplots(
        3, 1, figsize=(11, 9), sharex=True, gridspec_kw={"height_ratios": [1, 2.2, 1.6]}
    )
    if consumption_price is not None:
        ax_price.step(steps[:-1], consumption_price * 1000.0, where="post", color="black")
    ax_price.set_ylabel("price\nEUR/MWh")
    ax_price.set_title(title)
    for name, power in schedule.device_power.items():
        ax_power.step(steps[:-1], power, where="post", label=name, linewidth=1.2)
    ax_power.step(
        steps[:-1],
        schedule.site_power,
        where="post",
        label="site (scheduled)",
        color="black",
        linewidth=2.2,
    )
    if baseline is not None:
        ax_power.step(
            steps[:-1],
            baseline.site_power,
            where="post",
            color="grey",
            linestyle="--",
            label="site (unscheduled)",
        )
    ax_power.axhline(0.0, color="grey", linewidth=0.6)
    ax_power.set_ylabel("power kW\n(+ consumption)")
    ax_power.legend(loc="upper left", fontsize=8, ncol=4)
    for name, soc in schedule.device_soc.items():
        ax_soc.plot(steps, soc, label=name)
    ax_soc.set_ylabel("state of charge\nkWh")
    ax_soc.legend(loc="upper left", fontsize=8, ncol=4)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
