"""Every setting the desk reads from the environment is in the README's configuration table, so an operator
never has to read the code to find a knob (or learn of one from a surprise)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READS = re.compile(r'\benv(?:str|bool|int|decimal|secret)\(\s*"([A-Z0-9_]+)"|\b_csv\(\s*"([A-Z0-9_]+)"')
# a desk setting's name quoted anywhere (read through a helper, e.g. desk_setup's passwords)
NAMED = re.compile(r'"((?:DESK|GATEWAY|PAPER|STREAM|ENGINE)_[A-Z0-9_]+)"')
BROKER_ENV = re.compile(r'require_env\([^\[]*\[([^\]]*)\],\s*\{([^}]*)\}', re.S)


def settings_read() -> set[str]:
    names = set()
    for path in [*ROOT.glob("tradingdesk/*.py"), *ROOT.glob("orders/**/*.py")]:
        text = path.read_text()
        names |= {a or b for a, b in READS.findall(text)} | set(NAMED.findall(text))
        for required, optional in BROKER_ENV.findall(text):
            names |= set(re.findall(r'"([A-Z0-9_]+)"', required + optional))
    return names


def readme_table() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme[readme.index("| variable | default | meaning |"):]


def test_the_scan_finds_the_settings_it_should():
    assert {"GATEWAY_HOST", "DESK_ALLOWED_HOSTS", "DESK_CORS_ORIGINS", "KRAKEN_BASE_URL",
            "DESK_DEMO_PASSWORD"} <= settings_read()


def test_every_setting_is_in_the_readme_table():
    table = readme_table()
    missing = sorted(name for name in settings_read() if f"`{name}`" not in table)
    assert not missing, f"settings missing from the README's table: {missing}"
