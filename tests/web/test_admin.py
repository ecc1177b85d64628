"""The admin inspects orders, fills, positions, exit legs, alerts and the audit trail, and cannot change
them: those change only through the desk's services, with their outbox events and audit records."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from orders.models import AuditEvent, Order
from orders.services.orders import order_submit
from tests.builders import make_order_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client() -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def order(account, broker, clock) -> Order:
    return order_submit(account=account, request=make_order_request(quantity=3), broker=broker, actor="x").order


def test_an_order_can_be_inspected_in_the_admin(superuser_client, order):
    page = superuser_client.get(f"/admin/orders/order/{order.pk}/change/")

    assert page.status_code == 200
    assert "AAPL" in page.content.decode()


def test_an_order_cannot_be_edited_or_deleted_in_the_admin(superuser_client, order):
    edit = superuser_client.post(f"/admin/orders/order/{order.pk}/change/", {"quantity": "300"})
    delete = superuser_client.post(f"/admin/orders/order/{order.pk}/delete/", {"post": "yes"})

    assert edit.status_code == 403
    assert delete.status_code == 403
    assert Order.objects.get(pk=order.pk).quantity == 3


@pytest.mark.parametrize("model", ["order", "fill", "position", "auditevent", "exitleg", "alert"])
def test_the_admin_offers_no_way_to_add_trading_records(superuser_client, model):
    assert superuser_client.get(f"/admin/orders/{model}/add/").status_code == 403


def test_the_audit_trail_cannot_be_rewritten_in_the_admin(superuser_client, order):
    record = AuditEvent.objects.get(action="order.submit")

    superuser_client.post(f"/admin/orders/auditevent/{record.pk}/delete/", {"post": "yes"})

    assert AuditEvent.objects.filter(pk=record.pk).exists()


def test_accounts_stay_editable_in_the_admin(superuser_client, account):
    assert superuser_client.get(f"/admin/orders/account/{account.pk}/change/").status_code == 200
    assert superuser_client.get("/admin/orders/account/add/").status_code == 200
