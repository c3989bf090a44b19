"""callpulse HTTP API: REST, Server-Sent Events, /metrics and event ingest."""
