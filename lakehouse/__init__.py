"""finlake lakehouse: config, session, catalog, Kafka, transforms per layer, streaming wiring."""
