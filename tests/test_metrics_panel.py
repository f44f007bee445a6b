"""The panel's /metrics: status checks, job queue and storage for Prometheus; read with the
bearer token or by a logged-in admin or technician."""
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ispflow import status
from ispflow.standalone import create_app

TOKEN = "s3cret-scrape-token"


@pytest.fixture
def scraper(app):
    """A client of the same panel configured with ISPFLOW_METRICS_TOKEN."""
    config = {k: v for k, v in app.config.items() if k.startswith("ISPFLOW_") or k in (
        "TESTING", "SECRET_KEY", "SQLALCHEMY_DATABASE_URI")}
    token_app = create_app({**config, "ISPFLOW_METRICS_TOKEN": TOKEN})
    status.forget_cached()
    yield token_app.test_client()
    with token_app.app_context():
        from ispflow.extension import db

        db.engine.dispose()


def samples(response) -> dict[tuple, float]:
    return {(s.name, *sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for s in family.samples}


def test_a_scraper_with_the_token_reads_the_metrics(scraper):
    response = scraper.get("/netflow/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    metrics = samples(response)
    assert metrics[("ispflow_module_enabled",)] in (0, 1)
    assert metrics[("ispflow_status_check_ok", ("check", "collector"))] == 0  # no collector runs here
    assert metrics[("ispflow_worker_queue_depth", ("queue", "ispflow"))] >= 0
    assert metrics[("ispflow_storage_table_bytes", ("table", "ispflow.flows"))] > 0
    assert metrics[("ispflow_storage_database_bytes",)] > 0


def test_a_wrong_token_is_refused(scraper):
    assert scraper.get("/netflow/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_no_token_is_accepted_when_none_is_configured(client):
    assert client.get("/netflow/metrics", headers={"Authorization": "Bearer "}).status_code == 401


def test_queued_jobs_show_as_queue_depth(scraper, redis_conn):
    from rq import Queue

    Queue("ispflow", connection=redis_conn).enqueue("ispflow.status.forget_cached")
    metrics = samples(scraper.get("/netflow/metrics", headers={"Authorization": f"Bearer {TOKEN}"}))
    assert metrics[("ispflow_worker_queue_depth", ("queue", "ispflow"))] == 1


def test_an_admin_session_reads_the_metrics(auth, client):
    auth.login("admin")
    response = client.get("/netflow/metrics")
    assert response.status_code == 200
    assert ("ispflow_active",) in samples(response)
