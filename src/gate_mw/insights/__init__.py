"""Insights: spend and usage reports, experiment statistics, and the inspection app with
its dashboard page, all read from the state store the replicas share."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._experiments import ArmStats, Comparison, ExperimentStats
    from ._insights import Insights
    from ._report import Report, ReportRow
    from ._router import InspectionApp
    from ._stats import Estimate

__all__ = [
    "ArmStats", "Comparison", "Estimate", "ExperimentStats", "InspectionApp", "Insights", "Report",
    "ReportRow",
]


# A gateway records calls (`Insights`) without loading the reports and statistics that read
# them, or the inspection app (and Starlette's request and response modules) until mounted.
if not TYPE_CHECKING:
    __getattr__ = lazy_exports(__name__, globals(), {
        "._experiments": ("ArmStats", "Comparison", "ExperimentStats"),
        "._insights": ("Insights",),
        "._report": ("Report", "ReportRow"),
        "._router": ("InspectionApp",),
        "._stats": ("Estimate",),
    })
