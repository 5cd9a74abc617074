"""The fleet: each board's desired configuration (device twin) and commands to boards.

``store`` (SQL: twins, version history, commands and their states), ``schema`` (a desired
configuration checked with the edge agent's own models, secrets sealed for the board),
``service`` (the MQTT side: publish, deliver, expire, take reports and replies). Routes
in ``cloud/api/fleet.py``; the wire messages in ``wire.control``.
"""
