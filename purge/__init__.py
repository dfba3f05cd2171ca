"""ACR purge engine: rules -> plan -> execution -> report. Never imports azure.functions."""

__version__ = "0.1.0"
