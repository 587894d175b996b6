"""Benchmarks for promoter (not tests): ``python bench/run.py`` or ``make bench``."""
