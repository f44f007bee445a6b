.PHONY: run test bench
run:   ## install what is missing, upgrade the database, serve the panel, collector and worker
	bash scripts/run.sh
test:  ## install what is missing and run the whole test suite
	bash scripts/test.sh
bench: ## benchmarks (on demand, not in CI, ~10 min); figures go to docs/benchmarks.md
	bash scripts/bootstrap.sh --test
	.venv/bin/pip install -q -e '.[bench]'
	.venv/bin/python bench/decode.py
	.venv/bin/python bench/collector_cpu.py
	.venv/bin/python bench/indexes.py
	.venv/bin/python bench/ingest.py --flows 1000000
	.venv/bin/python bench/search.py
	.venv/bin/python bench/analytics.py --flows 5000000 --days 30
