"""Tunable knobs of the simulated mines (spike rate, rain, visitors), validated at load."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ModelParams(BaseModel):
    """How often the random, unscripted things happen. A scenario may override any of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Random methane spikes per methane point per day. With ~10 methane points
    # a coal mine sees ~35 spikes a week; with the default scale below about
    # 2 % of them cross the alarm threshold, i.e. about one alarm per mine per
    # week, so a default run exercises the rules without triggering orders daily.
    spikes_per_day: float = Field(default=0.5, ge=0.0, le=100.0)
    # Spike height as a fraction of the headroom (alarm - band bottom),
    # exponentially distributed with this mean.
    spike_scale: float = Field(default=0.15, gt=0.0, le=5.0)
    # Natural rain events per day at a tailings pond or pit, each 1-6 h at
    # 0.5-4 mm/h: keeps the 24 h total under the rainstorm class (50 mm).
    rain_events_per_day: float = Field(default=0.12, ge=0.0, le=10.0)
    # Probability that a visitor comes down on a given day shift.
    visitor_probability: float = Field(default=0.15, ge=0.0, le=1.0)
    # Probability that a crew member works a given shift (days off, sickness).
    attendance: float = Field(default=0.9, ge=0.0, le=1.0)
    # Minutes after a methane reading reaches alarm level before the crews of
    # that face start to leave (scenario methane rises only).
    evacuate_after_min: float = Field(default=5.0, ge=0.0, le=600.0)
