"""callpulse: real-time KPIs for contact centres."""

__version__ = "0.1.0"
