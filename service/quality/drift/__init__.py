"""Drift wired into the service: the reference, the window's data, the checks held to their
alpha-spending levels, the stored report and its page, a pipeline's batch, and their jobs.

The statistics live in the top-level `quality.drift` package; these modules read the
database, spend alpha and store reports.
"""
