"""Insights: spend and usage reports, experiment statistics, and the inspection app with
its dashboard page, all read from the state store the replicas share."""

from ._experiments import ArmStats, Comparison, ExperimentStats
from ._insights import Insights
from ._report import Report, ReportRow
from ._router import InspectionApp
from ._stats import Estimate

__all__ = [
    "ArmStats", "Comparison", "Estimate", "ExperimentStats", "InspectionApp", "Insights", "Report",
    "ReportRow",
]
