"""The service: wires guides, models, labeling and quality into an HTTP API and durable jobs.

Layout (each subpackage imports only the layers named; `tests/test_architecture.py` checks it):

- `core/`: settings, database engine and sessions, ORM base and tables, errors, progress.
- `auth/`: API keys (stored hashed) and signed, expiring media URLs.
- `jobs/`: the durable job system (rows with leases, a handler registry, workers).
- `pool/`: the image pool: registration, stored embeddings, known labels.
- `learning/`: the model runtime, training and model versions, choosing a round.
- `studio/`: Label Studio: pushing rounds, suggestions, annotation intake and reconciliation.
- `quality/`: overlap and gold tasks, agreement and drift reports, decisions, notifications.
- `audit/`: the append-only audit trail; `auth/`: API keys and signed media URLs.
- `api/`: the FastAPI app, dependencies, auth, schemas and routes. Nothing imports it but
  the entry points (`cli.py`, `demo.py`).
- `context.py`: the composition root every use case receives.

Transactions: a use case (a function a route or a job handler calls) owns its session's
transaction and commits it; the helpers it calls only add and flush. Calls to Label Studio
and other outside systems happen after a commit or inside a job, never in an open
transaction that other writers wait on.
"""
