"""The cloud's hand on a board: desired configuration, last known good, and commands.

Beside ``collectors/`` (which only produce data): ``plane`` wires it to the agent,
``twin`` decides which desired version to run and builds it, ``commands`` checks and runs
commands, ``state`` remembers versions and command ids across restarts, ``logbuf`` keeps
the last log lines for the ``logs`` command. The messages are in ``wire.control``; the
topics, payloads and states in docs/protocol.md.
"""
