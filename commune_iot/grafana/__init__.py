"""Grafana dashboards for technicians, built from readable Python (``dashboards.py``).

``model`` is a small builder of Grafana's JSON model, ``dashboards`` declares the five
dashboards, ``export`` writes them to ``dashboards/json/`` (committed; a test checks it is
up to date), ``macros`` renders their InfluxQL the way Grafana does (for the tests that run
every query against a real InfluxDB), ``push`` uploads them to an existing Grafana.
"""
