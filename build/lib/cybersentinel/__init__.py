"""CyberSentinel: a reproducible detector of malicious URLs, domains and IP addresses."""

__version__ = "0.1.0"
