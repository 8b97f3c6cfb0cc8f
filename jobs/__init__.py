"""Thin entry points: parse arguments, load config, build Spark once, call ``run(spark, cfg, args)``."""
