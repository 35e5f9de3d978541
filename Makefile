# Conveniences over ./run (which needs nothing but bash and python3).
.PHONY: demo test bench schemas
demo:
	./run demo
test:
	./run test
bench:
	./run bench
schemas:
	./run ccpulse --help >/dev/null && .venv/bin/python -m schemas.export
