"""freshrec core library: keeps a recommender's transformer CTR model fresh.

This package is Prefect-free on purpose: the Prefect tasks in ``tasks/`` and the flows in ``flows/``
call into it, never the other way round. Heavy libraries (torch, GX, Evidently) are imported inside
the modules that need them, so ``import freshrec`` stays cheap.
"""

__version__ = "0.1.0"
