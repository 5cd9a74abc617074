"""Edge agent: runs on a board beside a camera or access point and publishes over MQTT.

Layout: ``config`` (typed YAML + env), ``outbox`` (durable SQLite queue), ``link``
(MQTT session), ``health`` (board health from /proc and /sys), ``collectors/``
(plug-ins that produce metrics and events), ``control/`` (the cloud's desired configuration,
last known good, commands), ``runtime`` (the agent that wires them).
"""

from wire.version import __version__

__all__ = ["__version__"]
