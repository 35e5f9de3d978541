"""Sinks: rows shaped for ClickHouse tables, and the batch writer that stores them."""
