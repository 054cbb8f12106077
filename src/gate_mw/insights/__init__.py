"""Insights: spend and usage reports, experiment statistics, and the inspection app with
its dashboard page, all read from the state store the replicas share."""

from typing import TYPE_CHECKING, Any

from ._experiments import ArmStats, Comparison, ExperimentStats
from ._insights import Insights
from ._report import Report, ReportRow
from ._stats import Estimate

if TYPE_CHECKING:
    from ._router import InspectionApp

__all__ = [
    "ArmStats", "Comparison", "Estimate", "ExperimentStats", "InspectionApp", "Insights", "Report",
    "ReportRow",
]


def __getattr__(name: str) -> Any:
    # The inspection app (and Starlette's request and response modules) load when mounted.
    if name == "InspectionApp":
        from ._router import InspectionApp

        return InspectionApp
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
