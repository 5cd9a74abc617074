"""Command line, local demo, benchmarks and the local-service launcher of commune-iot."""

__version__ = "0.1.0"
