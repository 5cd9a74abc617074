"""Where ingested data goes: the local journal, InfluxDB (v1 HTTP API), SQL and snapshot files."""
