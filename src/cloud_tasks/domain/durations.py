"""Task-duration models for simulations (SPEC §9): parsing and sampling, given a random source.

A model is written as a constant number of seconds (``90``), ``uniform:LOW,HIGH`` (seconds),
``lognormal:MU,SIGMA`` (the parameters of the underlying normal, so the median is ``e^MU``
seconds), or measured durations (:func:`durations_from_text`). Sampling takes a
:class:`RandomSource` (``random.Random`` satisfies it) so the domain stays free of randomness
and a seeded simulation repeats exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, Final, Protocol

import attrs

from cloud_tasks.domain.events import TASK_COMPLETED
from cloud_tasks.exceptions import ConfigError

__all__ = [
    "ConstantDuration",
    "DurationModel",
    "LogNormalDuration",
    "MeasuredDuration",
    "RandomSource",
    "UniformDuration",
    "durations_from_text",
    "parse_duration_model",
]

#: z-score of the 95th percentile of a standard normal (fits a log-normal to p50 and p95).
_Z95: Final = 1.6448536269514722
_MODEL_HELP: Final = (
    "use seconds (90), uniform:LOW,HIGH, lognormal:MU,SIGMA or the path of a file of "
    "measured durations"
)


class RandomSource(Protocol):
    """What sampling needs from a random generator (``random.Random`` has all of it)."""

    def random(self) -> float: ...

    def uniform(self, a: float, b: float) -> float: ...

    def lognormvariate(self, mu: float, sigma: float) -> float: ...


@attrs.frozen
class ConstantDuration:
    """Every task takes ``seconds``."""

    seconds: float

    @property
    def mean_s(self) -> float:
        return self.seconds

    def sample(self, rng: RandomSource) -> float:
        return self.seconds

    def describe(self) -> str:
        return f"{self.seconds:g} s"


@attrs.frozen
class UniformDuration:
    """Durations spread evenly between ``low_s`` and ``high_s``."""

    low_s: float
    high_s: float

    @property
    def mean_s(self) -> float:
        return (self.low_s + self.high_s) / 2

    def sample(self, rng: RandomSource) -> float:
        return rng.uniform(self.low_s, self.high_s)

    def describe(self) -> str:
        return f"uniform {self.low_s:g}-{self.high_s:g} s"


@attrs.frozen
class LogNormalDuration:
    """``ln(duration)`` is normal with mean ``mu`` and deviation ``sigma`` (median ``e^mu`` s)."""

    mu: float
    sigma: float

    @property
    def mean_s(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)

    def sample(self, rng: RandomSource) -> float:
        return rng.lognormvariate(self.mu, self.sigma)

    def describe(self) -> str:
        return (
            f"lognormal mu={self.mu:g} sigma={self.sigma:g} "
            f"(median {math.exp(self.mu):.1f} s, mean {self.mean_s:.1f} s)"
        )


@attrs.frozen
class MeasuredDuration:
    """Durations drawn (with replacement) from measured ones."""

    values_s: tuple[float, ...]
    source: str = ""

    @property
    def mean_s(self) -> float:
        return math.fsum(self.values_s) / len(self.values_s)

    def sample(self, rng: RandomSource) -> float:
        return self.values_s[min(int(rng.random() * len(self.values_s)), len(self.values_s) - 1)]

    def describe(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return f"{len(self.values_s)} measured durations{where} (mean {self.mean_s:.1f} s)"


DurationModel = ConstantDuration | UniformDuration | LogNormalDuration | MeasuredDuration


def _numbers(text: str, count: int, where: str) -> list[float]:
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != count:
        raise ConfigError(f"{where}: expected {count} numbers separated by ',', got {text!r}")
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(f"{where}: {part!r} is not a number; {_MODEL_HELP}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{where}: {part!r} is not a finite number")
        values.append(value)
    return values


def parse_duration_model(text: str, where: str = "--task-duration") -> DurationModel | None:
    """The model ``text`` names, or ``None`` when it is neither a number nor ``KIND:...``
    (the caller then reads it as a file of measured durations).

    Raises:
        ConfigError: a malformed model (negative seconds, ``uniform`` with low > high, an
            unknown kind, a missing parameter).
    """
    spec = text.strip()
    try:
        seconds = float(spec)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            raise ConfigError(f"{where}: {spec!r} must be a non-negative number of seconds")
        return ConstantDuration(seconds)
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    known = ("uniform", "lognormal", "constant", "fixed")
    if kind not in known and (
        # A path (``durations.txt``, ``C:/data/d.txt``), not a misspelt model.
        not sep or len(kind) < 2 or not kind.isalpha() or any(c in rest for c in "/\\.")
    ):
        return None
    if kind == "uniform":
        low, high = _numbers(rest, 2, f"{where} {spec}")
        if low < 0 or high < low:
            raise ConfigError(f"{where} {spec}: need 0 <= LOW <= HIGH seconds")
        return UniformDuration(low, high)
    if kind == "lognormal":
        mu, sigma = _numbers(rest, 2, f"{where} {spec}")
        if sigma < 0:
            raise ConfigError(f"{where} {spec}: SIGMA must be >= 0")
        if mu > 50:
            raise ConfigError(f"{where} {spec}: MU={mu:g} means a median of e^{mu:g} seconds")
        return LogNormalDuration(mu, sigma)
    if kind in ("constant", "fixed"):
        (seconds,) = _numbers(rest, 1, f"{where} {spec}")
        if seconds < 0:
            raise ConfigError(f"{where}: {spec!r} must be a non-negative number of seconds")
        return ConstantDuration(seconds)
    raise ConfigError(f"{where}: unknown duration model {kind!r}; {_MODEL_HELP}")


def _positive(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _from_status(report: dict[str, Any], source: str) -> DurationModel:
    """A log-normal fitted to the median and p95 of ``status --format json`` (its only figures)."""
    stats = report.get("task_elapsed_s")
    if not isinstance(stats, dict) or not stats.get("count"):
        raise ConfigError(
            f"{source}: this status output has no elapsed times of completed tasks "
            "(task_elapsed_s.count is 0); run some tasks first"
        )
    median = _positive(stats.get("median_s")) or 0.0
    p95 = _positive(stats.get("p95_s")) or 0.0
    mean = _positive(stats.get("mean_s")) or 0.0
    if median <= 0:
        return ConstantDuration(mean)
    mu = math.log(median)
    if p95 > median:
        return LogNormalDuration(mu, (math.log(p95) - mu) / _Z95)
    if mean > median:
        return LogNormalDuration(mu, math.sqrt(2 * math.log(mean / median)))
    return ConstantDuration(median)


def _from_values(values: Iterable[float], source: str) -> MeasuredDuration:
    measured = tuple(values)
    if not measured:
        raise ConfigError(f"{source}: no durations found; {_FILE_HELP}")
    return MeasuredDuration(measured, source)


_FILE_HELP: Final = (
    "give one number of seconds per line, a JSON list of numbers, the event file of "
    "'cloud_tasks run --output-file' or the output of 'cloud_tasks status --format json'"
)


def durations_from_text(text: str, source: str) -> DurationModel:
    """The model measured in a file's ``text`` (``source`` names the file in errors).

    Accepted: one number of seconds per line (blank lines and ``#`` comments skipped); a JSON
    list of numbers; JSON lines of events as written by ``run --output-file`` (the
    ``elapsed_time`` of every successful ``task_completed``; other events are skipped); or the
    output of ``status --format json``, which carries only statistics, so a log-normal is
    fitted to its median and 95th percentile.

    Raises:
        ConfigError: the file holds none of these, with the line that is wrong.
    """
    stripped = text.strip()
    if stripped.startswith("[") or (stripped.startswith("{") and "\n{" not in stripped):
        try:
            whole = json.loads(stripped)
        except ValueError:
            whole = None
        if isinstance(whole, list):
            values = []
            for index, item in enumerate(whole):
                value = _positive(item)
                if value is None:
                    raise ConfigError(
                        f"{source}: item {index} is {item!r}, not a non-negative number of seconds"
                    )
                values.append(value)
            return _from_values(values, source)
        if isinstance(whole, dict) and "task_elapsed_s" in whole:
            return _from_status(whole, source)
    values = []
    for number, line in enumerate(text.splitlines(), start=1):
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if item.startswith("{"):
            try:
                event = json.loads(item)
            except ValueError:
                raise ConfigError(
                    f"{source}, line {number}: not valid JSON; {_FILE_HELP}"
                ) from None
            if (
                isinstance(event, dict)
                and event.get("event_type") == TASK_COMPLETED
                and event.get("success") is True
            ):
                value = _positive(event.get("elapsed_time"))
                if value is not None:
                    values.append(value)
            continue
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(
                f"{source}, line {number}: {item[:40]!r} is not a number; {_FILE_HELP}"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{source}, line {number}: {item!r} is not a duration >= 0")
        values.append(value)
    return _from_values(values, source)
