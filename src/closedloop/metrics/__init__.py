"""Supervision and evaluation: rates computed from the audit trail, not typed in.

Everything here is a pure computation over audit events, read one case at a time
from any CaseStore (or from any iterable of each case's events):

>>> from datetime import date
>>> from closedloop import metrics
>>> from closedloop.adapters.memory import InMemoryStore
>>> week = metrics.Period.week(date(2026, 3, 2), timezone="Asia/Shanghai")
>>> table = metrics.compute(InMemoryStore(), week, by="unit")
>>> table.total.reported, table.total.filing_rate
(0, None)

* :func:`compute` - counts and rates of a period, grouped by unit, category, area,
  urgency or channel (:class:`MetricTable`); definitions in :class:`MetricsConfig`.
* :func:`supervision_board` - open cases by warning level, supervision flags and
  the oldest overdue, per unit (:class:`SupervisionBoard`).
* :func:`signals` - supervision signals against idle execution (deadline hugging,
  extension habit, ping-pong, hollow closures, misrouting, silent cases), with the
  cases behind each and thresholds from :class:`SignalConfig` (:class:`SignalReport`).
* :func:`daily` - cases reported, filed and closed per day (:class:`DailySeries`).
* :func:`to_csv`, :func:`to_json`, :func:`write_csv`, :func:`write_json` - exports of
  any of these tables.
* :mod:`closedloop.metrics.charts` - PNG charts (needs matplotlib: the ``cli`` extra).

The formulas, with their denominators, are in ``docs/metrics.md``.
"""

from __future__ import annotations

from closedloop.metrics.board import BoardRow, FlaggedCase, SupervisionBoard, supervision_board
from closedloop.metrics.config import MetricsConfig, SignalConfig, ThreeRates
from closedloop.metrics.daily import DailySeries, DayRow, daily
from closedloop.metrics.export import Tabular, to_csv, to_json, write_csv, write_json
from closedloop.metrics.facts import CaseFacts, EventLike, summarize
from closedloop.metrics.period import Period
from closedloop.metrics.rates import MetricRow, MetricTable, compute
from closedloop.metrics.signals import SignalReport, SignalRow, signals
from closedloop.metrics.sources import Source, read_events
from closedloop.metrics.tally import Dimension

__all__ = [
    "BoardRow",
    "CaseFacts",
    "DailySeries",
    "DayRow",
    "Dimension",
    "EventLike",
    "FlaggedCase",
    "MetricRow",
    "MetricTable",
    "MetricsConfig",
    "Period",
    "SignalConfig",
    "SignalReport",
    "SignalRow",
    "Source",
    "SupervisionBoard",
    "Tabular",
    "ThreeRates",
    "compute",
    "daily",
    "read_events",
    "signals",
    "summarize",
    "supervision_board",
    "to_csv",
    "to_json",
    "write_csv",
    "write_json",
]
