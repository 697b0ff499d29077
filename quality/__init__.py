"""Quality checks as pure maths over arrays: agreement, consensus, gold scoring and drift.

Modules import numpy, scipy, scikit-learn, statsmodels (torch for drift) and ``guides`` only;
the service turns their typed results into reports, decisions and audit records.
"""
