"""Each role reaches exactly its pages; anonymous users are sent to log in."""
import pytest

from ispflow.roles import ROLES

# page -> roles that may open it: the access specification of the panel.
PAGES = {
    "/netflow/": {"admin", "technician", "compliance", "customer"},
    "/netflow/my": {"customer"},
    "/netflow/subscribers": {"admin"},
    "/netflow/search": {"compliance"},
    "/netflow/who": {"compliance"},
    "/netflow/exports": {"compliance"},
    "/netflow/audit": {"admin"},
    "/netflow/settings": {"admin"},
    "/netflow/status": {"admin", "technician"},
    "/netflow/storage": {"admin"},
    "/netflow/routers": {"admin", "technician"},
    "/netflow/routers/new": {"admin", "technician"},
    "/netflow/metrics": {"admin", "technician"},
    "/netflow/security": {"admin", "technician", "compliance"},
    "/netflow/security/settings": {"admin"},
    "/netflow/alerts": {"admin", "technician"},
}


# form (POST only) -> roles that may submit it; the others get 403 before anything is read.
FORMS = {
    "/netflow/status/exporters": {"admin"},
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("form", sorted(FORMS))
def test_each_role_submits_only_its_forms(auth, client, role, form):
    auth.login(role)
    response = client.post(form, data={})
    assert (response.status_code != 403) == (role in FORMS[form])


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", sorted(PAGES))
def test_each_role_reaches_only_its_pages(auth, client, role, page):
    auth.login(role)
    response = client.get(page)
    expected = 200 if role in PAGES[page] else 403
    assert response.status_code == expected


@pytest.mark.parametrize("page", sorted(PAGES))
def test_anonymous_users_are_sent_to_the_login_page(client, page):
    response = client.get(page)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_every_ispflow_view_declares_its_roles(app):
    unguarded = [
        rule.endpoint for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("ispflow.") and rule.endpoint != "ispflow.static"
        and not hasattr(app.view_functions[rule.endpoint], "ispflow_roles")
    ]
    assert unguarded == []


def test_menu_shows_only_the_entries_of_the_role(auth, client):
    auth.login("customer")
    page = client.get("/netflow/my").data
    assert b"My addresses" in page
    assert b"Subscribers" not in page
