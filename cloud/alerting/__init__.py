"""Outage detection and alerting: who is down, why, and whether a technician must hear of it.

``engine`` judges (pure, clock injected), ``store`` keeps the alert lifecycle in SQL,
``maintenance`` decides what may be sent, ``outages`` writes outages to InfluxDB.
"""
