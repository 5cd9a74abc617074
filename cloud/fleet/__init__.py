"""The fleet: what the cloud knows and decides about the boards as a whole.

``store`` (SQL: twins, version history, commands and their states), ``schema`` (a desired
configuration checked with the edge agent's own models, secrets sealed for the board),
``service`` (the MQTT side: publish, deliver, expire, take reports and replies); routes in
``cloud/api/fleet.py``, the wire messages in ``wire.control``.
``releases``: signed agent bundles the cloud stores and serves (it cannot sign them);
``boardauth``: how a board proves who it is over HTTPS (its broker credentials);
``rollout``: staged updates, a canary first, then commune by commune, paused on a failure.
"""
