"""One module per flow of the worker; streams/worker/app.py assembles them."""
