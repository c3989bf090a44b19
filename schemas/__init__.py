"""JSON Schemas of the contract: one per event type in ``events/``, and the KPI object.

A package so the schemas travel with an installed callpulse (the validator loads them from here).
"""

from pathlib import Path

SCHEMAS_DIR = Path(__file__).resolve().parent
EVENT_SCHEMAS_DIR = SCHEMAS_DIR / "events"
