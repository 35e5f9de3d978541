"""The faust worker assembled from its flows (app.py), its figure check, HTTP pages, alert delivery, and the process harness the demo, the benchmarks and the tests start it with."""
