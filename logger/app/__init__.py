"""gestor's log service: durable JSON log records, graphs and a live page."""

__version__ = "0.1.0"

# The service's layers, lowest first. A module imports modules of its own
# layer or of layers before it, never of one after, and no two modules import
# each other, however indirectly (`make lint` checks both with
# scripts/check_layers.py; a new module must be placed here). A subpackage's
# name covers its modules.
LAYERS = (
    ("config", "models"),  # settings; the records and API shapes
    ("alerts", "windows"),  # pure logic on them: alert records, graph windows
    ("db", "postgres"),  # storage: SQLite with the shared queries; PostgreSQL
    ("events", "metrics", "graphs", "render"),  # live stream, counters, drawing
    ("deps", "ingest"),  # what the routes share: dependencies, the write path
    ("routers",),  # one router per resource
    ("main", "migrate"),  # the app; the one-shot schema migration
)
