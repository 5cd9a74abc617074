"""Cloud service: MQTT ingest, durable journal, InfluxDB/SQL storage and the HTTP API."""
