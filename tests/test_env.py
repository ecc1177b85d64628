from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from tradingdesk.env import envbool, envdecimal, envint, envsecret, envstr

NAME = "DESK_TEST_SETTING"


@pytest.fixture(autouse=True)
def _unset(monkeypatch):
    for name in (NAME, f"{NAME}_FILE"):
        monkeypatch.delenv(name, raising=False)


# -- envstr ----------------------------------------------------------------------------------------------


def test_envstr_returns_the_default_when_unset():
    assert envstr(NAME, "fallback") == "fallback"


def test_envstr_returns_the_value_as_set(monkeypatch):
    monkeypatch.setenv(NAME, " spaced ")
    assert envstr(NAME, "fallback") == " spaced "


# -- envbool ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("default", [True, False])
def test_envbool_returns_the_default_when_unset(default):
    assert envbool(NAME, default) is default


@pytest.mark.parametrize("raw", ["1", "true", "True", "TRUE", "yes", "on", " true "])
def test_envbool_reads_true_spellings(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    assert envbool(NAME, False) is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "off", "OFF"])
def test_envbool_reads_false_spellings(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    assert envbool(NAME, True) is False


@pytest.mark.parametrize("raw", ["maybe", "2", "tru", "enabled"])
def test_envbool_rejects_anything_else_naming_the_variable_and_value(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(ImproperlyConfigured) as caught:
        envbool(NAME, False)
    assert NAME in str(caught.value)
    assert repr(raw) in str(caught.value)


# -- envint ----------------------------------------------------------------------------------------------


def test_envint_returns_the_default_when_unset():
    assert envint(NAME, 8080) == 8080


@pytest.mark.parametrize("raw", ["", "   "])
def test_envint_treats_an_empty_value_as_unset(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    assert envint(NAME, 8080) == 8080


@pytest.mark.parametrize(("raw", "expected"), [("9000", 9000), (" 42 ", 42), ("-3", -3), ("0", 0)])
def test_envint_reads_an_integer(monkeypatch, raw, expected):
    monkeypatch.setenv(NAME, raw)
    assert envint(NAME, 8080) == expected


@pytest.mark.parametrize("raw", ["eighty", "1.5", "1e3", "0x10"])
def test_envint_rejects_a_value_that_is_not_an_integer(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(ImproperlyConfigured, match=f"{NAME} must be an integer"):
        envint(NAME, 8080)


def test_envint_rejects_a_value_below_its_minimum(monkeypatch):
    monkeypatch.setenv(NAME, "0")
    with pytest.raises(ImproperlyConfigured, match=f"{NAME} must be at least 1, got 0"):
        envint(NAME, 8080, minimum=1)


def test_envint_accepts_a_value_equal_to_its_minimum(monkeypatch):
    monkeypatch.setenv(NAME, "1")
    assert envint(NAME, 8080, minimum=1) == 1


# -- envdecimal ------------------------------------------------------------------------------------------


def test_envdecimal_parses_the_default_when_unset():
    value = envdecimal(NAME, "100000")
    assert isinstance(value, Decimal)
    assert value == Decimal("100000")


def test_envdecimal_treats_an_empty_value_as_unset(monkeypatch):
    monkeypatch.setenv(NAME, "  ")
    assert envdecimal(NAME, "0.25") == Decimal("0.25")


@pytest.mark.parametrize(("raw", "expected"), [("2500.50", "2500.50"), (" 0.1 ", "0.1"), ("1e3", "1000")])
def test_envdecimal_reads_a_decimal_exactly(monkeypatch, raw, expected):
    monkeypatch.setenv(NAME, raw)
    assert envdecimal(NAME, "0") == Decimal(expected)


@pytest.mark.parametrize("raw", ["lots", "1,000", "12.5.1"])
def test_envdecimal_rejects_a_value_that_is_not_a_number(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(ImproperlyConfigured) as caught:
        envdecimal(NAME, "0")
    assert f"{NAME} must be a decimal number" in str(caught.value)
    assert repr(raw) in str(caught.value)


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-inf"])
def test_envdecimal_rejects_a_value_that_is_not_finite(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(ImproperlyConfigured, match=f"{NAME} must be a finite decimal number"):
        envdecimal(NAME, "0")


# -- envsecret -------------------------------------------------------------------------------------------


def test_envsecret_returns_the_default_when_neither_variable_is_set():
    assert envsecret(NAME) == ""
    assert envsecret(NAME, "dev-only") == "dev-only"


def test_envsecret_reads_the_variable_itself(monkeypatch):
    monkeypatch.setenv(NAME, "s3cret")
    assert envsecret(NAME) == "s3cret"


def test_envsecret_reads_the_file_named_by_name_file_without_its_trailing_newline(monkeypatch, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv(f"{NAME}_FILE", str(secret))
    assert envsecret(NAME) == "from-a-file"


def test_envsecret_prefers_the_file_over_the_variable(monkeypatch, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("from-a-file")
    monkeypatch.setenv(NAME, "from-the-env")
    monkeypatch.setenv(f"{NAME}_FILE", str(secret))
    assert envsecret(NAME) == "from-a-file"


def test_envsecret_ignores_an_empty_name_file(monkeypatch):
    monkeypatch.setenv(NAME, "from-the-env")
    monkeypatch.setenv(f"{NAME}_FILE", "")
    assert envsecret(NAME) == "from-the-env"


def test_envsecret_refuses_an_unreadable_file_naming_the_file_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(f"{NAME}_FILE", str(tmp_path / "missing.txt"))
    with pytest.raises(ImproperlyConfigured) as caught:
        envsecret(NAME)
    assert f"{NAME}_FILE points at an unreadable file" in str(caught.value)


def test_envsecret_does_not_put_the_secret_in_its_error(monkeypatch, tmp_path):
    monkeypatch.setenv(NAME, "do-not-leak")
    monkeypatch.setenv(f"{NAME}_FILE", str(tmp_path))   # a directory cannot be read as a file
    with pytest.raises(ImproperlyConfigured) as caught:
        envsecret(NAME)
    assert "do-not-leak" not in str(caught.value)
    assert f"{NAME}_FILE" in str(caught.value)
