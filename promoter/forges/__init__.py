"""The forges: where the config repo lives. See base.py for the protocol."""
