"""The second step of logging in to a running desk, taken as a person with an authenticator app takes it: the
browser tests' logins and the HTTP ones go through it. ``demo`` (an admin) and ``risk`` give a code after their
password; the first login of each sets the authenticator up on the page (its secret read off the page, as a
person types it into an app, and the first code given), and later logins give the code the app would show.

The desk takes each code once and one 30 s step either side of now, so a person logging in again within the
same step gives the next step's code, and waits when that was used too. ``Authenticators`` keeps each person's
secret, last step and recovery codes for one desk."""

from __future__ import annotations

import re
import time
from base64 import b32decode
from dataclasses import dataclass, field
from html import unescape
from urllib.parse import urlsplit

import requests
from django_otp.oath import TOTP
from playwright.sync_api import Page, expect

SETUP, CODE = "/account/two-factor/", "/login/code/"
STEP = 30                       # seconds: every authenticator app shows a new code this often
TOLERANCE = 1                   # steps either side of now the desk takes


def code_at(key: bytes, step: int) -> str:
    """The 6-digit code an authenticator with ``key`` shows during the 30 s step number ``step``."""
    totp = TOTP(key, step=STEP)
    totp.time = step * STEP
    return f"{totp.token():06d}"


def secret_key(shown: str) -> bytes:
    """The key of the secret as the set-up page shows it (base32 in groups of four)."""
    text = re.sub(r"\s", "", shown).upper()
    return b32decode(text + "=" * (-len(text) % 8))


@dataclass
class Authenticator:
    key: bytes
    last_step: int = -1
    recovery_codes: list[str] = field(default_factory=list)

    def next_code(self) -> str:
        """A code the desk has not taken yet and still takes: now's, else the next step's, else (both used) now's
        once the clock has moved on. Never the step before now's: the desk re-centres its window on the step it
        last took (django-otp's drift), so after a next step's code it no longer takes the previous one."""
        while True:
            now = int(time.time()) // STEP
            step = max(now, self.last_step + 1)
            if step <= now + TOLERANCE:
                self.last_step = step
                return code_at(self.key, step)
            time.sleep(max(0.05, (step - TOLERANCE) * STEP - time.time() + 0.05))


Authenticators = dict[str, Authenticator]     # each person's on one desk, by user name, once set up


def authenticators_of(desk) -> Authenticators:
    """The authenticators of ``desk``'s people, kept on the desk object for as long as it runs."""
    if not hasattr(desk, "authenticators"):
        desk.authenticators = {}
    return desk.authenticators


# -- in the browser --------------------------------------------------------------------------------------------

def pass_second_step(page: Page, desk, username: str) -> None:
    """On the page the password led to: set up the authenticator there (a first login), or give its code; nothing
    for a person the desk does not ask. The page then goes on to where the login was headed."""
    path = urlsplit(page.url).path
    if path == SETUP:
        key = secret_key(page.locator("#totp-secret").inner_text())
        person = authenticators_of(desk)[username] = Authenticator(key)
        page.fill("#setup-form input[name=code]", person.next_code())
        page.click("#setup-form button[type=submit]")
        expect(page.locator("#recovery-codes li")).to_have_count(10)
        person.recovery_codes = page.locator("#recovery-codes li").all_inner_texts()
        page.click("#setup-continue")
    elif path == CODE:
        page.fill("#code-form input[name=code]", authenticators_of(desk)[username].next_code())
        page.click("#code-form button[type=submit]")


def log_in_page(page: Page, desk, credentials: tuple[str, str], *, admin: bool = False) -> None:
    """Log ``page`` in as a person does, at the desk's login (or the admin's), through the second step."""
    page.goto("/admin/login/" if admin else "/login/")
    page.fill("input[name=username]", credentials[0])
    page.fill("input[name=password]", credentials[1])
    with page.expect_navigation():
        page.click("input[type=submit]" if admin else "#login-form button[type=submit]")
    pass_second_step(page, desk, credentials[0])


# -- over HTTP -------------------------------------------------------------------------------------------------

def pass_second_step_http(session: requests.Session, desk_url: str, authenticators: Authenticators,
                          username: str, answer: requests.Response) -> requests.Response:
    """``answer`` is the login's (not followed): set up the authenticator or give its code, as the browser does.
    Returns the last answer (a redirect to where the login was headed)."""
    location = answer.headers.get("Location", "")
    path = urlsplit(location).path
    if answer.status_code != 302 or path not in (SETUP, CODE):
        return answer
    page = session.get(f"{desk_url}{location}", timeout=10)
    token = session.cookies["csrftoken"]
    if path == SETUP:
        shown = re.search(r'id="totp-secret">([^<]+)<', page.text).group(1)
        person = authenticators[username] = Authenticator(secret_key(unescape(shown)))
        done = session.post(f"{desk_url}{SETUP}", data={"code": person.next_code(), "csrfmiddlewaretoken": token},
                            timeout=10, allow_redirects=False, headers={"Referer": f"{desk_url}{SETUP}"})
        person.recovery_codes = re.findall(r"<li>([a-z2-7]{8})</li>", done.text)
        assert len(person.recovery_codes) == 10, done.text[:2000]
        return done
    return session.post(f"{desk_url}{CODE}", timeout=10, allow_redirects=False,
                        data={"code": authenticators[username].next_code(), "csrfmiddlewaretoken": token},
                        headers={"Referer": f"{desk_url}{CODE}"})
