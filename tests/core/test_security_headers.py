import pytest


@pytest.mark.django_db
def test_pages_carry_a_strict_content_security_policy(client):
    policy = client.get("/").headers["Content-Security-Policy"]
    assert (
        "default-src 'self'" in policy
        and "script-src 'self'" in policy
        and "frame-ancestors 'none'" in policy
    )


@pytest.mark.django_db
def test_api_docs_are_served_without_any_cdn(client):
    page = client.get("/api/docs/").content.decode()
    assert "cdn" not in page.lower() and "/static/drf_spectacular_sidecar/" in page
    assert client.get("/api/schema/").status_code == 200


@pytest.mark.django_db
def test_privacy_and_mandate_check_pages_exist(client):
    assert client.get("/privacy/").status_code == 200
    page = client.get("/verify/?link=https://example.test/verify/nope/").content.decode()
    assert "No mandate has this check link" in page
