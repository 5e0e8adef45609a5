"""End-to-end tests: MQTT → ingest → rules worker → alerting → real HTTP receivers, and back through the API."""
