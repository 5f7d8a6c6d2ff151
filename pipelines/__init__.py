"""Batch jobs that compose library calls: data -> train -> evaluate -> model artifact."""
