"""Device configuration and fleet set-up: the per-device TOML schema, provisioning and broker security."""
