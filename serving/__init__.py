"""The serving wing: the real-time decision plans (``serving.decision``) that read the lakehouse's
streams and score with the registry's champion. It imports ``lakehouse`` and ``ml``; neither
imports it."""
