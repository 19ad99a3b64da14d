"""Plans built in code: each practice with 2 practitioners, 1 assistant and 2 copied master forms."""

from __future__ import annotations

from intakeq_partner.provisioning import AssistantSpec, FormSpec, Plan, PracticeSpec, PractitionerSpec

FORMS = (FormSpec("Intake Form", copy_consent_forms=True), FormSpec("Adult History"))


def practice_spec(i: int, prefix: str = "bench") -> PracticeSpec:
    ext = f"{prefix}-{i:06d}"
    return PracticeSpec(
        external_id=ext,
        practice_name=f"Practice {i}",
        first_name="Pat",
        last_name=f"Doe {i}",
        email=f"owner{i}@example.com",
        city="Springfield",
        practitioners=(
            PractitionerSpec(f"{ext}-dr-1", "Ann", "Lee", f"ann{i}@example.com", "Practitioner"),
            PractitionerSpec(f"{ext}-dr-2", "Bob", "Kim", f"bob{i}@example.com"),
        ),
        assistants=(AssistantSpec(f"{ext}-as-1", "Cy Ray", f"cy{i}@example.com", practitioners=(f"{ext}-dr-1",)),),
        forms=FORMS,
    )


def build_plan(n: int, prefix: str = "bench") -> Plan:
    return Plan(
        practices=tuple(practice_spec(i, prefix) for i in range(n)),
        source=f"<{n} practices built in code>",
        form_refs={form.name: "bench" for form in FORMS},
    )
