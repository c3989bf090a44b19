"""callpulse stream side: the pure KPI core (``stream.kpi``) and the Faust worker glue."""
