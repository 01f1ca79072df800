from tests.security.conftest import client_from


def test_the_platform_answers_from_another_loopback_address(secure_platform, journey):
    response = client_from("127.0.0.7").get(secure_platform.gateway_url + "/health", timeout=10)
    assert response.status_code == 200
    assert journey["verdict"]["result"] == "valid"
