"""Collector plug-ins: each produces metrics and/or events for the devices beside a board.

A plug-in is a :class:`~edge.collectors.base.Collector` subclass with its own pydantic
``Options`` model, listed in :mod:`edge.collectors.registry` by name (or named in the
config as ``package.module:Class``). Collectors only produce data; buffering, sequence
numbers and delivery belong to the runtime.
"""
