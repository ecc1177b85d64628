"""services.exposure: the pre-trade check keeps an account's exposure between orders, and never trusts
it once anything else has changed the account's orders or positions.

These tests commit (``transaction=True``): a book is only remembered after its order's transaction commits.
``DESK_VERIFY_EXPOSURE`` is on in the suite, so every remembered book used here is also compared with a read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from orders.domain.enums import OrderStatus, Side
from orders.domain.errors import OrderRejected
from orders.events import outbox_prune
from orders.models import Event, Order
from orders.services import exposure
from orders.services.orders import order_cancel, order_submit
from tests.builders import make_account, make_order_request, run_engine

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal
AAPL_ASK = D("149.23")            # the paper venue's AAPL ask at the suite's frozen clock (seed 7)


def place(account, broker, **fields) -> Order:
    return order_submit(account=account, request=make_order_request(**fields), broker=broker).order


def newest_event_id(account) -> int:
    return Event.objects.filter(account=account).order_by("-id").values_list("id", flat=True).first()


def current(account) -> exposure.Exposure:
    with transaction.atomic():
        return exposure.exposure_current(account.pk)


@pytest.fixture
def funded_for_ten(clock):
    """An account whose cash buys ten AAPL at the ask and not eleven."""
    return make_account(name="ten", cash=AAPL_ASK * 10 + D("50"))


def test_working_orders_hold_buying_power_back_order_after_order(funded_for_ten, broker, clock):
    for _ in range(10):
        assert place(funded_for_ten, broker, quantity=1).status == OrderStatus.OPEN

    with pytest.raises(OrderRejected) as refused:
        place(funded_for_ten, broker, quantity=1)

    assert refused.value.reason == "INSUFFICIENT_BALANCE"
    assert D(refused.value.details["available"]) == D("50")


def test_a_cancel_elsewhere_frees_buying_power_for_the_next_order(funded_for_ten, broker, clock):
    orders = [place(funded_for_ten, broker, quantity=1) for _ in range(10)]
    with pytest.raises(OrderRejected):
        place(funded_for_ten, broker, quantity=1)

    order_cancel(account=funded_for_ten, order_id=str(orders[0].id), broker=broker)

    assert place(funded_for_ten, broker, quantity=1).status == OrderStatus.OPEN


def test_a_fill_by_the_engine_is_seen_by_the_next_check(funded_for_ten, broker, clock):
    place(funded_for_ten, broker, quantity=5)
    run_engine(funded_for_ten, broker, seconds=1, clock=clock)     # bought 5: cash spent, a position held

    book = current(funded_for_ten)

    assert book.position_quantity("AAPL") == D("5")
    assert book.working == {}
    # the five bought are margin now, so five more fit and a sixth does not; selling what is held always does
    place(funded_for_ten, broker, quantity=5)
    with pytest.raises(OrderRejected):
        place(funded_for_ten, broker, quantity=1)
    assert place(funded_for_ten, broker, side=Side.SELL, quantity=5).status == OrderStatus.OPEN


def test_the_book_is_remembered_at_the_version_of_the_orders_own_event(funded_for_ten, broker, clock):
    order = place(funded_for_ten, broker, quantity=2)

    book = current(funded_for_ten)

    assert book.version == newest_event_id(funded_for_ten)
    assert book.working == {("AAPL", "BUY"): (D("2"), D("2") * order.reserved_price)}


def test_with_a_remembered_book_the_check_reads_no_working_orders(funded_for_ten, broker, clock, settings):
    settings.DESK_VERIFY_EXPOSURE = False        # the verifying read would be the query this test looks for
    settings.DESK_CACHES_COLD = False            # about the remembered book itself, also in the cold run
    for _ in range(3):
        place(funded_for_ten, broker, quantity=1)

    with CaptureQueriesContext(connection) as queries:
        place(funded_for_ten, broker, quantity=1)

    reads_of_orders = [q["sql"] for q in queries.captured_queries
                       if q["sql"].startswith("SELECT") and "orders_order" in q["sql"]]
    assert reads_of_orders == []


def test_a_refused_order_leaves_no_book_behind(funded_for_ten, broker, clock):
    place(funded_for_ten, broker, quantity=1, client_order_id="once")
    remembered = current(funded_for_ten)

    with pytest.raises(OrderRejected):
        place(funded_for_ten, broker, quantity=2, client_order_id="once")     # same id, different order
    with pytest.raises(OrderRejected):
        place(funded_for_ten, broker, quantity=50)                           # more than the cash buys

    assert current(funded_for_ten) == remembered


def test_a_change_written_without_an_event_is_caught_by_verification(funded_for_ten, broker, clock, settings):
    settings.DESK_CACHES_COLD = False            # about the remembered book itself, also in the cold run
    order = place(funded_for_ten, broker, quantity=1)
    Order.objects.filter(pk=order.pk).update(quantity=3)        # what no service may do: no outbox event

    with pytest.raises(exposure.ExposureMismatch):
        current(funded_for_ten)


def test_books_are_per_account(broker, clock):
    alice, bob = make_account(name="a", cash=D("100000")), make_account(name="b", cash=D("100000"))
    place(alice, broker, quantity=3)
    place(bob, broker, quantity=1)
    place(alice, broker, quantity=1)

    assert current(alice).working[("AAPL", "BUY")][0] == D("4")
    assert current(bob).working[("AAPL", "BUY")][0] == D("1")


def test_after_the_outbox_is_pruned_the_next_check_reads_again(funded_for_ten, broker, clock):
    for _ in range(9):
        place(funded_for_ten, broker, quantity=1)
    outbox_prune(account_ids=[funded_for_ten.pk], older_than=datetime.now(UTC) + timedelta(days=1))

    place(funded_for_ten, broker, quantity=1)
    with pytest.raises(OrderRejected):
        place(funded_for_ten, broker, quantity=1)
    assert current(funded_for_ten).working[("AAPL", "BUY")][0] == D("10")
