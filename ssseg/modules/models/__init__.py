"""Models built from config dicts through the registries of :mod:`.registries`."""
