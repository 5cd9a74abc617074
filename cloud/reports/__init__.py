"""Wi-Fi usage reports for the provincial IT staff (issue 8): per AP, village, commune, month.

| module | what |
|---|---|
| ``settings.py`` | the ``reports:`` config section |
| ``period.py`` | ranges in Asia/Ho_Chi_Minh, the previous period |
| ``wifi_query.py`` | the InfluxQL: 15-minute rollups (CQs, refresh), their freshness check, the reads |
| ``counters.py``, ``intervals.py`` | octet counters (wraps, reboots, gaps), outage time arithmetic |
| ``wifi_compute.py`` | the metric definitions, from query results to ``wifi_model.WifiReport`` |
| ``service.py`` | build (stale rollups mended first) + render, shared by router, CLI and monthly job |
| ``render_html.py``, ``charts.py``, ``templates/`` | report page (inline SVG, A4 print), kept list |
| ``table.py`` | the table columns all three formats share |
| ``render_xlsx.py``, ``render_csv.py`` | file exports (XLSX with its print setup) |
| ``store.py``, ``monthly.py`` | kept reports (SQL + files), the monthly job |
| ``router.py`` | FastAPI routes (wired with the login dependency and the web UI's header) |
"""
