"""Write examples/plan.toml: 200 made-up practices for `make demo` (deterministic, so the file is reviewable).

Run: .venv/bin/python examples/make_plan.py [COUNT] [OUT]
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

FIRST = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Grace", "Hugo", "Ines", "Jon", "Kai", "Lena", "Milo", "Nia"]
LAST = ["Alvarez", "Brooks", "Chen", "Dubois", "Eze", "Fischer", "Gupta", "Haddad", "Ito", "Jensen", "Kowalski"]
KINDS = ["Counseling", "Family Therapy", "Wellness", "Physio", "Psychology", "Nutrition", "Speech Therapy"]
CITIES = [("Portland", "OR"), ("Austin", "TX"), ("Denver", "CO"), ("Madison", "WI"), ("Raleigh", "NC")]


def q(value: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML for these plain names)."""
    return json.dumps(value)


def practice(rng: random.Random, n: int) -> list[str]:
    ext = f"ext-{n:04d}"
    first, last = rng.choice(FIRST), rng.choice(LAST)
    domain = f"{last.lower()}-{n:04d}.example.com"
    city, state = rng.choice(CITIES)
    main = f"{ext}-owner"
    lines = [
        "[[practices]]",
        f"external_practice_id = {q(ext)}",
        f"practice_name = {q(f'{last} {rng.choice(KINDS)}')}",
        f"first_name = {q(first)}",
        f"last_name = {q(last)}",
        f"email = {q(f'{first.lower()}@{domain}')}",
        f"city = {q(city)}",
        f"state = {q(state)}",
        f"external_practitioner_id = {q(main)}",
        "",
        "[[practices.practitioners]]",
        f"external_practitioner_id = {q(main)}",
        f"first_name = {q(first)}",
        f"last_name = {q(last)}",
        f"email = {q(f'{first.lower()}@{domain}')}",
        "",
    ]
    staff = [main]
    for k in range(rng.choice((1, 2))):
        pfirst, plast = rng.choice(FIRST), rng.choice(LAST)
        pid = f"{ext}-dr-{k + 1}"
        staff.append(pid)
        lines += [
            "[[practices.practitioners]]",
            f"external_practitioner_id = {q(pid)}",
            f"first_name = {q(pfirst)}",
            f"last_name = {q(plast)}",
            f"email = {q(f'{pfirst.lower()}.{plast.lower()}@{domain}')}",
            'role_name = "Practitioner"',
            "",
        ]
    afirst, alast = rng.choice(FIRST), rng.choice(LAST)
    lines += [
        "[[practices.assistants]]",
        f"external_assistant_id = {q(f'{ext}-front-desk')}",
        f"name = {q(f'{afirst} {alast}')}",
        f"email = {q(f'frontdesk@{domain}')}",
        f"practitioner_ids = [{', '.join(q(s) for s in staff[1:])}]",
        "",
    ]
    return lines


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).with_name("plan.toml")
    rng = random.Random(2024)
    lines = [
        f"# {count} made-up practices for `make demo`; regenerate with examples/make_plan.py.",
        "# Each practice: its main user (made with it), 1-2 more practitioners, a front-desk assistant,",
        "# and the two default forms copied from the master account. The main user is made with the practice;",
        "# listing it under practitioners as well keeps its details in step and lets assistants name it.",
        "",
        "[defaults]",
        'forms = ["Intake Form", "Progress Note"]',
        "copy_attached_consent_forms = true",
        "forms_enabled = true",
        "",
    ]
    for n in range(1, count + 1):
        lines += practice(rng, n)
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out} ({count} practices)")


if __name__ == "__main__":
    main()
