"""The test suite: one import root. Modules import ``tests.fakes...``, ``tests.harness``,
``tests.hostile...`` (pytest runs with ``pythonpath = ["."]``); see tests/fakes/__init__.py."""
