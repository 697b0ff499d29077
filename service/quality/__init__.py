"""Quality checks wired into the service: gold tasks, agreement reports, decisions, drift.

The maths lives in the top-level `quality` package; this layer reads the stored answers,
stores versioned reports (`schemas.py`), writes every decision to the audit trail, acts in
Label Studio (another annotator for failing tasks) and announces failed checks.
"""
