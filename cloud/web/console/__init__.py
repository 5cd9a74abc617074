"""The technicians' console: fleet, device pages, alerts, maintenance, board configuration,
commands, and camera masks drawn on the picture.

Server-rendered like the event log (``cloud/web/pages.py``); the few scripts (the fleet page's
refresh, the mask editor, live command states) are files in ``cloud/web/static`` because the
Content-Security-Policy allows no inline script. Technicians and admins only; a technician
given communes sees only theirs. Every write goes through the same functions as the JSON API
(``cloud/api/alerts.py``, ``cloud/fleet``) and so into the audit trail.

``services``: what the pages read; ``fleetview``: each device's state as the fleet page shows
it; ``history``: outages and the state timeline (SVG); ``figures``: the newest health, stream
and Wi-Fi figures from InfluxDB; ``configform``: a form generated from the board's config
schema; ``routes``: the pages.
"""
