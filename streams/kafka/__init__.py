"""The fence around faust's and aiokafka's private API: the batched consumer (inbox, gaps),
the producer buffer that waits for the broker (sends), the local broker's work-around
(broker_quirks) and the few private reads the worker needs (internals). No module outside
this package touches a private attribute of either library; tests/streams/test_private_api.py
names every one and fails when a pinned upgrade drops it."""
