# The two commands a newcomer needs (see README):
#   make demo   set up .venv (Python 3.12) and run the demo end to end on local moto + the local gateway
#               (DEMO_ARGS="--large-files 1000000": batch files above 1 MB run as shards, as large files deployed)
#   make test   set up .venv and run the whole test suite
.PHONY: demo test setup test-deps sam-build

setup:
	@scripts/bootstrap.sh

demo: setup
	.venv/bin/maas-demo $(DEMO_ARGS)

test-deps:
	@scripts/install-browser.sh

test: setup test-deps
	.venv/bin/python -m pytest $(PYTEST_ARGS)

sam-build:
	scripts/sam-build.sh
