"""ctid — CTI daemon that measures per-seat talk time, quotas and compliance at the Asterisk PBX."""

__version__ = "0.1.0"
