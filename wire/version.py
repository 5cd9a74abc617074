"""The release of this code base, below everything that reports it.

Agents send it as ``agent_version`` (birth and health), the cloud and the command line
print it; it lives here, under both sides, so neither imports it from the other.
"""

__version__ = "0.1.0"
