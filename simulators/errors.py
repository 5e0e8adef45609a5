"""The base error of the simulators package."""

from minewatch.errors import MinewatchError


class SimulatorError(MinewatchError):
    """A scenario, a simulator option or the broker refused; the message names what and why."""
