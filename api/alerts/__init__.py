"""In-service alerting: rules from the queue file, an evaluator with states and hysteresis, and
delivery of every transition (Kafka, webhooks, ``GET /v1/alerts``, the SSE stream).

``config`` parses the ``alerts:`` section, ``rules`` turns figures into a rule's value,
``engine`` moves alerts through their states, ``delivery`` sends transitions, ``service`` runs
it all inside the API. docs/ALERTS.md is the user's side of it.
"""
