"""The pure KPI core: accumulators, windows and formulas.

Standard library only. Faust, FastAPI and prometheus_client must never be imported from here:
the core is what the worker, the API and the tests share, and it is tested on its own.
"""
