"""Clients, not the server: a headless aiortc member for tests, benchmarks and bots (as aiortc keeps contrib/)."""
