"""The central queue service: queue rules, persistence, HTTP API, MQTT publisher, web pages."""
