"""Command line, local demo, benchmarks and the local-service launcher of commune-iot."""

from wire.version import __version__

__all__ = ["__version__"]
