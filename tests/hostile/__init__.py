"""The hostile-input corpus and the fault/race helpers (``tests.hostile``)."""
