"""MQTT ingest: validate, convert, journal, acknowledge; then drain the journal to InfluxDB."""
