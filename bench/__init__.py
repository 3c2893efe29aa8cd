"""Benchmarks: ``make bench`` runs every ``bench/*.py`` module with a ``main()``."""
