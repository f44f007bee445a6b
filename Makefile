.PHONY: run test bench
run:   ## install what is missing, upgrade the database, serve the panel, collector and worker
	bash scripts/run.sh
test:  ## install what is missing and run the whole test suite
	bash scripts/test.sh
bench: ## benchmarks (on demand, not in CI); figures go to docs/benchmarks.md
	bash scripts/bootstrap.sh --test && .venv/bin/python -m bench
