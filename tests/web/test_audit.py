"""The audit trail: filtered by actor, action, result and time, as a page, an htmx table and a CSV export a
spreadsheet opens as text (a cell that starts like a formula is prefixed with a quote)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import AuditEvent
from orders.web.views import csv_safe
from tests.web.page import parse

pytestmark = pytest.mark.django_db


def event(account, *, actor="user:tina", action="order.submit", target="", result="ok", details=None, ago=0):
    return AuditEvent.objects.create(at=timezone.now() - timedelta(minutes=ago), account=account, actor=actor,
                                     action=action, target=target, result=result, details=details or {})


def table_actions(response) -> list[str]:
    rows = parse(response.content).by_id("audit-table").find("tbody").find_all("tr")
    return [row.find_all("td")[3].text for row in rows if "empty" not in (row.attrs.get("class") or "")]


def exported(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="audit.csv"'
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def trail(account):
    event(account, action="order.submit", ago=30)
    event(account, action="order.cancel", ago=20)
    event(account, actor="user:rita", action="account.kill_switch", result="partial", ago=10)
    event(account, actor="engine", action="alert.raise", ago=5)


def test_the_trail_is_newest_first(risk_client, trail):
    assert table_actions(risk_client.get("/audit/")) == ["alert.raise", "account.kill_switch", "order.cancel",
                                                         "order.submit"]


@pytest.mark.parametrize(("query", "actions"), [
    ("actor=rita", ["account.kill_switch"]),
    ("action=order.", ["order.cancel", "order.submit"]),
    ("action=ORDER.CANCEL", ["order.cancel"]),
    ("result=partial", ["account.kill_switch"]),
    ("actor=tina&action=cancel", ["order.cancel"]),
    ("actor=nobody", []),
])
def test_filtering_the_trail(risk_client, trail, query, actions):
    assert table_actions(risk_client.get(f"/audit/?{query}")) == actions


def test_filtering_by_time(risk_client, trail):
    since = (timezone.now() - timedelta(minutes=25)).strftime("%Y-%m-%dT%H:%M:%S")
    until = (timezone.now() - timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%M:%S")

    assert table_actions(risk_client.get(f"/audit/?since={since}&until={until}")) == ["account.kill_switch",
                                                                                      "order.cancel"]


def test_a_malformed_time_is_ignored(risk_client, trail):
    assert len(table_actions(risk_client.get("/audit/?since=yesterday"))) == 4


def test_the_filters_answer_htmx_with_the_table_only(risk_client, htmx, trail):
    response = risk_client.get("/audit/?actor=rita", headers=htmx)

    html = response.content.decode()
    assert "<html" not in html and [e.attrs["id"] for e in parse(html).elements] == ["audit-table"]
    assert table_actions(response) == ["account.kill_switch"]


def test_the_page_keeps_the_filters_and_exports_what_they_select(risk_client, trail):
    page = parse(risk_client.get("/audit/?actor=rita&action=kill").content)

    assert page.find("input", name="actor").attrs["value"] == "rita"
    assert page.by_id("audit-export").attrs["href"] == "/audit.csv?actor=rita&action=kill"


def test_nothing_found_says_so(risk_client):
    assert parse(risk_client.get("/audit/").content).by_id("audit-table").find("tr", class_="empty").text == (
        "Nothing recorded for these filters.")


def test_a_trader_sees_only_the_trail_of_their_accounts(trader_client, account, other_account):
    event(account, action="mine")
    event(other_account, actor="user:oscar", action="theirs")
    AuditEvent.objects.create(at=timezone.now(), account=None, actor="user:rita", action="user.login")

    assert table_actions(trader_client.get("/audit/")) == ["mine"]
    assert [row[3] for row in exported(trader_client.get("/audit.csv"))[1:]] == ["mine"]


def test_the_risk_desk_sees_every_account(risk_client, account, other_account):
    event(account, action="mine")
    event(other_account, action="theirs")

    assert sorted(table_actions(risk_client.get("/audit/"))) == ["mine", "theirs"]


# -- CSV -----------------------------------------------------------------------------------------------

def test_the_csv_export_has_a_header_and_one_row_per_event(risk_client, account, trail):
    rows = exported(risk_client.get("/audit.csv?action=order."))

    assert rows[0] == ["at", "account", "actor", "action", "target", "result", "details"]
    assert [(r[1], r[2], r[3]) for r in rows[1:]] == [("alice", "user:tina", "order.cancel"),
                                                     ("alice", "user:tina", "order.submit")]


def test_a_cell_that_starts_like_a_formula_is_exported_as_text(risk_client, account):
    event(account, actor="@SUM(A1:A9)", action="+order.submit", target="=cmd|' /C calc'!A0", result="-1",
          details="=cmd|' /C notepad'!A0")

    [_, row] = exported(risk_client.get("/audit.csv"))

    assert row[2:] == ["'@SUM(A1:A9)", "'+order.submit", "'=cmd|' /C calc'!A0", "'-1",
                       '"=cmd|\' /C notepad\'!A0"']
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row)


def test_details_are_exported_as_json(risk_client, account):
    event(account, details={"reason": "=cmd", "quantity": "10"})

    [_, row] = exported(risk_client.get("/audit.csv"))

    assert row[6] == '{"quantity": "10", "reason": "=cmd"}'


@pytest.mark.parametrize(("value", "safe"), [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@A1", "'@A1"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("plain", "plain"), ("", ""), (None, ""), (12, "12"), ("a=b", "a=b"),
])
def test_csv_safe(value, safe):
    assert csv_safe(value) == safe


def test_the_export_needs_a_login(client):
    assert client.get("/audit.csv").status_code == 302


# -- how details read ----------------------------------------------------------------------------------

def details_lines(response) -> list[str]:
    row = parse(response.content).by_id("audit-table").find("tbody").find("tr")
    return [line.text for line in row.find_all("td")[6].find_all("div")]


def test_details_read_as_key_equals_value_sorted_with_nested_values_as_json(risk_client, account):
    event(account, action="limits.set", details={"quantity": "10", "changed": {"max_quantity_hard": {
        "from": None, "to": "25"}}, "reason": "news", "legs": ["SL", "TP"], "forced": True})

    assert details_lines(risk_client.get("/audit/")) == [
        'changed = {"max_quantity_hard": {"from": null, "to": "25"}}',
        "forced = true",
        'legs = ["SL", "TP"]',
        "quantity = 10",
        "reason = news",
    ]


def test_details_that_are_not_a_record_read_as_they_are(risk_client, account):
    event(account, details="=cmd")

    assert details_lines(risk_client.get("/audit/")) == ["=cmd"]


def test_no_details_read_as_nothing(risk_client, account):
    event(account, details={})

    assert details_lines(risk_client.get("/audit/")) == []
