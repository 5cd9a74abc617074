"""Wi-Fi usage reports for the provincial IT staff (issue 8): per AP, village, commune, month.

| module | what |
|---|---|
| ``settings.py`` | the ``reports:`` config section |
| ``period.py`` | ranges in Asia/Ho_Chi_Minh, the previous period |
| ``wifi_query.py`` | the InfluxQL (query-time GROUP BY time aggregation) |
| ``counters.py``, ``intervals.py`` | octet counters (wraps, reboots, gaps), outage time arithmetic |
| ``wifi_compute.py`` | the metric definitions, from query results to ``wifi_model.WifiReport`` |
| ``service.py`` | build + render, shared by router, CLI and monthly job |
| ``render_html.py``, ``charts.py``, ``templates/`` | the HTML page with inline SVG charts, A4 print CSS |
| ``render_xlsx.py``, ``render_csv.py`` | file exports |
| ``store.py``, ``monthly.py`` | kept reports (SQL + files), the monthly job |
| ``router.py`` | FastAPI routes (the lead wires them with the login dependency) |
"""
