"""gestor's log service: durable JSON log records, graphs and a live page."""

__version__ = "0.1.0"
