import pytest

from tests.builders import run_engine


@pytest.mark.django_db
def test_market_order_fills_on_the_next_engine_tick(client, account, broker, clock):
    response = client.post("/v1/orders", {"symbol": "AAPL", "side": "BUY", "quantity": "10", "order_type": "MARKET"},
                           content_type="application/json")
    assert response.status_code == 201
    order_id = response.json()["id"]
    run_engine(account, broker, seconds=1, clock=clock)
    order = client.get(f"/v1/orders/{order_id}").json()
    assert order["status"] == "FILLED"
    assert order["filled_quantity"] == "10"
