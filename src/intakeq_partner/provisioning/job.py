"""The provisioning job: make IntakeQ match a plan, creating and updating only what differs.

Design, in short:
- one `practices.list()` at the start (it walks IntakeQ's pages) instead of a lookup per practice; master
  forms checked before any write;
- a fixed pool of workers pulls practices from one iterator, so memory stays flat however long the plan is;
- inside a practice the steps run in order (practice, practitioners, assistants, forms), and a failed step
  skips only what depends on it;
- updates send whole objects (IntakeQ may clear what a PUT leaves out): practitioners and assistants as just
  listed with the plan's changes, a practice as read again just before its update;
- each object is looked up by external ID and compared on the fields the plan sets, so a re-run of a
  finished plan sends no writes at all;
- creates with an external ID are idempotent in the facade: one that meets a practice made meanwhile by another
  run or process returns it, or, made with other details, hands it over (ConflictError.existing) to be
  updated like a listed one; a form copy is not idempotent, so after a copy whose outcome is unknown the
  practice's forms are listed again before copying a second time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from .._errors import (
    ConflictError,
    IntakeQError,
    InvalidRequestError,
    is_ambiguous,
)
from .._generated.models import Assistant, FormTemplate, Practice, Practitioner
from ..partner import PartnerClient
from .journal import Journal, fingerprint, items_of
from .plan import AssistantSpec, FormSpec, Plan, PlanError, PlanProblem, PracticeSpec, PractitionerSpec
from .report import ItemKind, ItemResult, ItemStatus, ProvisionReport

__all__ = ["provision"]

logger = logging.getLogger("intakeq_partner.provisioning")

COPY_ATTEMPTS = 3
"""Copies of one form tried in one run when each outcome is unknown (each after a fresh look at the forms)."""

_REASON_LIMIT = 300
_JOURNALED = "confirmed by an earlier run (the journal)"
_DEFAULT_ROLE = "Administrator"  # what IntakeQ gives a user created without a role, the main user included

ProgressCallback = Callable[[ItemResult], None]


async def provision(
    partner: PartnerClient,
    plan: Plan,
    *,
    concurrency: int = 20,
    dry_run: bool = False,
    on_progress: ProgressCallback | None = None,
    stop: asyncio.Event | None = None,
    journal: Journal | None = None,
    verify: bool = False,
) -> ProvisionReport:
    """Converge the partner account to `plan` and report every item.

    Once `stop` is set, no practice is started; those under way finish, and the report holds what finished.

    `concurrency` practices are worked on at once. `dry_run` only reads, and reports what would be created
    or updated. Raises PlanError (before any write) when the plan names forms the master account lacks, and
    IntakeQError when the practice list itself cannot be read; anything else is reported per item.

    With a `journal`, every converged item is written to it before it is reported, and practices the journal
    confirms under their current plan entry are reported unchanged without a call (`verify=True`: re-read
    them all the same). See `journal.py`.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidRequestError(f"concurrency must be an int >= 1, got {concurrency!r}")
    started = time.monotonic()
    report = ProvisionReport(dry_run=dry_run)
    trusted = journal.confirmed(plan.practices) if journal is not None and not verify else set()
    prints = {s.external_id: fingerprint(s) for s in plan.practices} if journal is not None and not dry_run else {}

    def record(item: ItemResult) -> None:
        if journal is not None and prints and item.practice not in trusted:
            journal.write(item, prints[item.practice])  # committed before anyone hears it is done
        report.items.append(item)
        if on_progress is not None:
            on_progress(item)

    masters = await _master_forms(partner, plan) if plan.form_names else {}
    wanted = {spec.external_id for spec in plan.practices} - trusted
    existing: dict[str, Practice] = {}
    for practice in await partner.practices.list() if wanted else ():
        if practice.external_practice_id in wanted:
            existing[practice.external_practice_id] = practice
    del wanted

    pending: Iterator[PracticeSpec] = iter(plan.practices)

    async def worker() -> None:
        for spec in pending:  # one shared iterator: each practice is taken by exactly one worker
            if stop is not None and stop.is_set():
                return
            if spec.external_id in trusted:
                for kind, key in items_of(spec):
                    record(ItemResult(kind, spec.external_id, key, ItemStatus.UNCHANGED, _JOURNALED))
                continue
            run = _PracticeRun(partner, spec, existing.pop(spec.external_id, None), masters, dry_run, record)
            await run.run()

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(plan.practices))):
            group.create_task(worker())
    report.elapsed = time.monotonic() - started
    return report


async def _master_forms(partner: PartnerClient, plan: Plan) -> dict[str, FormTemplate]:
    """The master form behind each name in the plan; unknown or ambiguous names fail the plan before any write."""
    by_name: dict[str, list[FormTemplate]] = {}
    for form in await partner.forms.master():
        if form.name is not None and not form.archived:
            by_name.setdefault(form.name, []).append(form)
    problems: list[PlanProblem] = []
    known = ", ".join(sorted(by_name)) or "none"
    for name, where in plan.form_refs.items():
        found = by_name.get(name, [])
        if not found:
            problems.append(PlanProblem(where, None, f"{name!r} is not a master form (master forms: {known})"))
        elif len(found) > 1:
            problems.append(PlanProblem(where, None, f"{len(found)} master forms are named {name!r}; rename one"))
    if problems:
        raise PlanError(plan.source, problems)
    return {name: by_name[name][0] for name in plan.form_refs}


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 3] + "..."


def _same_email(a: str | None, b: str | None) -> bool:
    return (a or "").casefold() == (b or "").casefold()


def _practice_changes(spec: PracticeSpec, current: Practice) -> tuple[str, ...]:
    """Fields the plan sets that differ. An unreported flag (None) is not a difference: it cannot be compared."""
    changed = [
        name
        for name in ("practice_name", "first_name", "last_name", "street_address", "city", "state", "postal_code")
        if (value := getattr(spec, name)) is not None and value != getattr(current, name)
    ]
    if not _same_email(spec.email, current.email):
        changed.append("email")
    for name in ("forms_enabled", "booking_enabled"):
        value, now = getattr(spec, name), getattr(current, name)
        if value is not None and now is not None and value != now:
            changed.append(name)
    return tuple(changed)


@dataclass(slots=True)
class _Known:
    """What we know of a practitioner: from a listing, a create, or (for a new practice's main user) the plan."""

    id: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    role_name: str | None
    listed: Practitioner | None = None  # as just listed: an update sends it back whole without reading again

    @classmethod
    def of(cls, p: Practitioner) -> _Known:
        return cls(p.id, p.first_name, p.last_name, p.email, p.role_name, p)


def _practitioner_changes(spec: PractitionerSpec, current: _Known) -> tuple[str, ...]:
    changed = [name for name in ("first_name", "last_name") if getattr(spec, name) != getattr(current, name)]
    if not _same_email(spec.email, current.email):
        changed.append("email")
    if spec.role_name is not None and spec.role_name != current.role_name:
        changed.append("role_name")
    return tuple(changed)


def _assistant_changes(spec: AssistantSpec, current: Assistant, ids: Mapping[str, str]) -> tuple[str, ...]:
    changed = []
    if spec.name != current.name:
        changed.append("name")
    if not _same_email(spec.email, current.email):
        changed.append("email")
    if spec.role_name is not None and spec.role_name != current.role_name:
        changed.append("role_name")
    if spec.practitioners is not None:
        # The API answers with IntakeQ Ids whatever we sent; an unresolvable reference always counts as a change.
        wanted = {ids.get(ref, f"?{ref}") for ref in spec.practitioners}
        if wanted != set(current.practitioner_ids or ()):
            changed.append("practitioners")
    return tuple(changed)


@dataclass
class _PracticeRun:
    """The ordered steps for one practice; every plan item is reported exactly once."""

    partner: PartnerClient
    spec: PracticeSpec
    current: Practice | None
    masters: Mapping[str, FormTemplate]
    dry_run: bool
    record: ProgressCallback
    reported: set[tuple[ItemKind, str]] = field(default_factory=set)
    made_elsewhere: bool = False  # the create met a practice someone else made with other details

    def emit(
        self,
        kind: ItemKind,
        key: str,
        status: ItemStatus,
        reason: str | None = None,
        changed: tuple[str, ...] = (),
    ) -> None:
        if (kind, key) in self.reported:
            return
        self.reported.add((kind, key))
        self.record(ItemResult(kind, self.spec.external_id, key, status, reason, changed))

    def items(self) -> Iterator[tuple[ItemKind, str]]:
        yield ItemKind.PRACTICE, self.spec.external_id
        for p in self.spec.practitioners:
            yield ItemKind.PRACTITIONER, p.external_id
        for a in self.spec.assistants:
            yield ItemKind.ASSISTANT, a.external_id
        for f in self.spec.forms:
            yield ItemKind.FORM, f.name

    def finish_rest(self, status: ItemStatus, reason: str) -> None:
        for kind, key in self.items():
            self.emit(kind, key, status, reason)

    async def run(self) -> None:
        practice_id: str | None = None
        try:
            practice_id = await self._run()
        except Exception as exc:  # a bug must neither hang the job nor lose the practice's items
            logger.exception("provisioning practice %s failed unexpectedly", self.spec.external_id)
            self.finish_rest(ItemStatus.FAILED, f"internal error: {type(exc).__name__}: {_reason(exc)}")
        finally:
            if practice_id is not None:
                # Done with this practice: do not keep 10,000 practice keys cached for the rest of the run.
                self.partner.forget_practice_key(practice_id)

    async def _run(self) -> str | None:
        spec = self.spec
        fresh = self.current is None
        practice_id = await self._practice()
        fresh = fresh and not self.made_elsewhere
        if practice_id is None and not (fresh and self.dry_run):
            return None
        ids: dict[str, str] = {}
        failed: set[str] = set()
        if spec.practitioners or any(a.practitioners for a in spec.assistants):
            if not await self._practitioners(practice_id, fresh, ids, failed):
                # Without the listing no reference can be checked: leave assistants that name practitioners.
                failed.update(ref for a in spec.assistants for ref in a.practitioners or ())
        if spec.assistants:
            await self._assistants(practice_id, fresh, ids, failed)
        if spec.forms:
            await self._forms(practice_id, fresh)
        return practice_id

    # ----- practice

    async def _practice(self) -> str | None:
        """The practice's IntakeQ Id once it exists (None: it could not be made, or a dry run would make it)."""
        spec, key = self.spec, self.spec.external_id
        current = self.current
        self.current = None  # the listing entry is not needed past this step
        if current is None:
            if self.dry_run:
                self.emit(ItemKind.PRACTICE, key, ItemStatus.CREATED)
                return None
            try:
                created = await self.partner.practices.create(
                    practice_name=spec.practice_name,
                    first_name=spec.first_name,
                    last_name=spec.last_name,
                    email=spec.email,
                    external_practice_id=key,
                    external_practitioner_id=spec.main_practitioner_external_id,
                    street_address=spec.street_address,
                    city=spec.city,
                    state=spec.state,
                    postal_code=spec.postal_code,
                    forms_enabled=spec.forms_enabled,
                    booking_enabled=spec.booking_enabled,
                )
            except ConflictError as exc:
                if exc.existing is None:
                    self.emit(ItemKind.PRACTICE, key, ItemStatus.FAILED, _reason(exc))
                    self.finish_rest(ItemStatus.SKIPPED, "the practice could not be created")
                    return None
                # Made meanwhile by another run or process, with other details: converge it like a listed one.
                current, self.made_elsewhere = exc.existing, True
            except IntakeQError as exc:
                self.emit(ItemKind.PRACTICE, key, ItemStatus.FAILED, _reason(exc))
                self.finish_rest(ItemStatus.SKIPPED, "the practice could not be created")
                return None
            else:
                self.emit(ItemKind.PRACTICE, key, ItemStatus.CREATED)
                return created.id
        assert current is not None
        changed = _practice_changes(spec, current)
        if not changed:
            self.emit(ItemKind.PRACTICE, key, ItemStatus.UNCHANGED)
        elif self.dry_run:
            self.emit(ItemKind.PRACTICE, key, ItemStatus.UPDATED, changed=changed)
        else:
            try:
                await self.partner.practices.update(
                    current.id,
                    practice_name=spec.practice_name,
                    first_name=spec.first_name,
                    last_name=spec.last_name,
                    email=spec.email,
                    street_address=spec.street_address,
                    city=spec.city,
                    state=spec.state,
                    postal_code=spec.postal_code,
                    forms_enabled=spec.forms_enabled,
                    booking_enabled=spec.booking_enabled,
                )
            except IntakeQError as exc:
                # The practice exists, so what hangs under it can still be converged.
                self.emit(ItemKind.PRACTICE, key, ItemStatus.FAILED, _reason(exc))
            else:
                self.emit(ItemKind.PRACTICE, key, ItemStatus.UPDATED, changed=changed)
        return current.id

    # ----- practitioners

    async def _practitioners(self, practice_id: str | None, fresh: bool, ids: dict[str, str], failed: set[str]) -> bool:
        """Converge practitioners, filling `ids` (external ID -> Id) and `failed`; False if they cannot be listed."""
        spec = self.spec
        known: dict[str, _Known] = {}
        unclaimed: dict[str, _Known] = {}  # listed without an external ID, by email: adopted, never duplicated
        main = spec.main_practitioner_external_id
        owner_listed = main is None and any(_same_email(p.email, spec.email) for p in spec.practitioners)
        if fresh and (practice_id is None or not owner_listed):
            # A practice made just now holds only its main user, made from the practice's own fields.
            owner = _Known(None, spec.first_name, spec.last_name, spec.email, _DEFAULT_ROLE)
            if main is not None:
                known[main] = owner
            elif owner_listed:  # a dry run: the real run would list the practice and adopt its main user
                unclaimed[spec.email.casefold()] = owner
        else:
            # Also a new practice whose main user the plan lists without naming it: its Id is needed to adopt it.
            assert practice_id is not None
            try:
                practitioners = self.partner.practice(practice_id).practitioners
                listed = await practitioners.list(include_inactive=True)
            except IntakeQError as exc:
                reason = f"listing practitioners failed: {_reason(exc)}"
                for p in spec.practitioners:
                    self.emit(ItemKind.PRACTITIONER, p.external_id, ItemStatus.FAILED, reason)
                return False
            for found in listed:
                if found.external_practitioner_id:
                    known[found.external_practitioner_id] = _Known.of(found)
                    ids[found.external_practitioner_id] = found.id
                elif found.email:
                    unclaimed.setdefault(found.email.casefold(), _Known.of(found))
            if main is not None and main not in known and all(p.external_id != main for p in spec.practitioners):
                await self._name_main_user(practice_id, main, unclaimed, ids)
        for p in spec.practitioners:
            ext = p.external_id
            current = known.get(ext)
            adopted = current is None and (current := unclaimed.pop(p.email.casefold(), None)) is not None
            if current is None:
                if self.dry_run:
                    self.emit(ItemKind.PRACTITIONER, ext, ItemStatus.CREATED)
                    continue
                assert practice_id is not None
                try:
                    created = await self.partner.practice(practice_id).practitioners.create(
                        first_name=p.first_name,
                        last_name=p.last_name,
                        email=p.email,
                        role_name=p.role_name,
                        external_practitioner_id=ext,
                    )
                except ConflictError as exc:
                    if exc.existing is None:
                        failed.add(ext)
                        self.emit(ItemKind.PRACTITIONER, ext, ItemStatus.FAILED, _reason(exc))
                        continue
                    current = _Known.of(exc.existing)  # made meanwhile elsewhere, with other details: converge it
                except IntakeQError as exc:
                    failed.add(ext)
                    self.emit(ItemKind.PRACTITIONER, ext, ItemStatus.FAILED, _reason(exc))
                    continue
                else:
                    ids[ext] = created.id
                    self.emit(ItemKind.PRACTITIONER, ext, ItemStatus.CREATED)
                    continue
            changed = (
                ("external_id", *_practitioner_changes(p, current)) if adopted else _practitioner_changes(p, current)
            )
            if current.id is not None:
                ids[ext] = current.id
            if not changed:
                self.emit(ItemKind.PRACTITIONER, ext, ItemStatus.UNCHANGED)
            elif self.dry_run:
                self.emit(ItemKind.PRACTITIONER, ext, ItemStatus.UPDATED, changed=changed)
            else:
                assert practice_id is not None
                try:
                    await self.partner.practice(practice_id).practitioners.update(
                        current.id or ext,  # no Id for a new practice's main user: then found by its external ID
                        external_practitioner_id=ext,
                        first_name=p.first_name,
                        last_name=p.last_name,
                        email=p.email,
                        role_name=p.role_name,
                        current=current.listed,  # None for a new practice's main user: read first
                    )
                except IntakeQError as exc:
                    failed.add(ext)
                    self.emit(ItemKind.PRACTITIONER, ext, ItemStatus.FAILED, _reason(exc))
                else:
                    self.emit(ItemKind.PRACTITIONER, ext, ItemStatus.UPDATED, changed=changed)
        return True

    async def _name_main_user(
        self, practice_id: str, main: str, unclaimed: dict[str, _Known], ids: dict[str, str]
    ) -> None:
        """Give an existing practice's main user the plan's `main_practitioner_external_id`, so assistants can
        name it. It is part of the practice item, not an item of its own; a failure shows on those assistants."""
        owner = unclaimed.pop(self.spec.email.casefold(), None)
        if owner is None or owner.id is None:
            return
        if not self.dry_run:
            try:
                await self.partner.practice(practice_id).practitioners.update(
                    owner.id, external_practitioner_id=main, current=owner.listed
                )
            except IntakeQError as exc:
                logger.debug("naming the main user of %s failed: %s", self.spec.external_id, _reason(exc))
                return
        ids[main] = owner.id

    # ----- assistants

    async def _assistants(self, practice_id: str | None, fresh: bool, ids: dict[str, str], failed: set[str]) -> None:
        spec = self.spec
        current: dict[str, Assistant] = {}
        unclaimed: dict[str, Assistant] = {}
        if not fresh:
            assert practice_id is not None
            try:
                listed = await self.partner.practice(practice_id).assistants.list()
            except IntakeQError as exc:
                reason = f"listing assistants failed: {_reason(exc)}"
                for a in spec.assistants:
                    self.emit(ItemKind.ASSISTANT, a.external_id, ItemStatus.FAILED, reason)
                return
            current = {a.external_assistant_id: a for a in listed if a.external_assistant_id}
            for listed_one in listed:  # made without an external ID: adopted by email, never duplicated
                if not listed_one.external_assistant_id and listed_one.email:
                    unclaimed.setdefault(listed_one.email.casefold(), listed_one)
        for a in spec.assistants:
            ext = a.external_id
            blocked = [ref for ref in a.practitioners or () if ref in failed]
            if blocked:
                reason = f"practitioner {blocked[0]} did not converge"
                self.emit(ItemKind.ASSISTANT, ext, ItemStatus.SKIPPED, reason)
                continue
            found = current.get(ext)
            adopted = found is None and (found := unclaimed.pop(a.email.casefold(), None)) is not None
            changed: tuple[str, ...] = ()
            if found is None:
                status = ItemStatus.CREATED
            else:
                changed = _assistant_changes(a, found, ids)
                changed = ("external_id", *changed) if adopted else changed
                status = ItemStatus.UPDATED if changed else ItemStatus.UNCHANGED
            if status is ItemStatus.UNCHANGED or self.dry_run:
                self.emit(ItemKind.ASSISTANT, ext, status, changed=changed)
                continue
            assert practice_id is not None
            client = self.partner.practice(practice_id).assistants
            # Practitioners go by external ID: IntakeQ resolves them, and a new practice's main user has no Id here.
            refs = list(a.practitioners) if a.practitioners is not None else None
            try:
                if found is None:
                    try:
                        await client.create(
                            name=a.name,
                            email=a.email,
                            role_name=a.role_name,
                            external_assistant_id=ext,
                            practitioner_ids=refs,
                        )
                    except ConflictError as exc:
                        if exc.existing is None:
                            raise
                        # Made meanwhile elsewhere, with other details: converge it like a listed one.
                        found, status = exc.existing, ItemStatus.UPDATED
                        changed = _assistant_changes(a, found, ids)
                if found is not None and changed:
                    await client.update(
                        found.id,
                        external_assistant_id=ext,
                        name=a.name,
                        email=a.email,
                        role_name=a.role_name,
                        practitioner_ids=refs,
                        current=found,  # as just listed: sent back whole, with the plan's changes
                    )
            except IntakeQError as exc:
                self.emit(ItemKind.ASSISTANT, ext, ItemStatus.FAILED, _reason(exc))
            else:
                if status is ItemStatus.UPDATED and not changed:
                    status = ItemStatus.UNCHANGED  # made meanwhile elsewhere, already as the plan has it
                self.emit(ItemKind.ASSISTANT, ext, status, changed=changed)

    # ----- forms

    async def _forms(self, practice_id: str | None, fresh: bool) -> None:
        spec = self.spec
        have: set[tuple[str | None, str | None]] = set()
        if not fresh:
            assert practice_id is not None
            try:
                have = _present(await self.partner.forms.list(practice=practice_id))
            except IntakeQError as exc:
                reason = f"listing the practice's forms failed: {_reason(exc)}"
                for f in spec.forms:
                    self.emit(ItemKind.FORM, f.name, ItemStatus.FAILED, reason)
                return
        for f in spec.forms:
            master = self.masters[f.name]
            if (master.name, master.type) in have:
                self.emit(ItemKind.FORM, f.name, ItemStatus.UNCHANGED)
                continue
            if self.dry_run:
                self.emit(ItemKind.FORM, f.name, ItemStatus.CREATED)
                continue
            assert practice_id is not None
            try:
                have = await self._copy(practice_id, master, f, have)
            except IntakeQError as exc:
                self.emit(ItemKind.FORM, f.name, ItemStatus.FAILED, _reason(exc))
            else:
                self.emit(ItemKind.FORM, f.name, ItemStatus.CREATED)

    async def _copy(
        self, practice_id: str, master: FormTemplate, form: FormSpec, have: set[tuple[str | None, str | None]]
    ) -> set[tuple[str | None, str | None]]:
        """Copy one master form; when a copy may have landed, look before copying again. Returns the forms present."""
        wanted = (master.name, master.type)
        for attempt in range(COPY_ATTEMPTS):
            try:
                await self.partner.forms.copy(
                    source_master_form_id=master.id,
                    practice=practice_id,
                    copy_attached_consent_forms=form.copy_consent_forms,
                )
            except IntakeQError as exc:
                if not is_ambiguous(exc) or attempt == COPY_ATTEMPTS - 1:
                    raise
                logger.debug("copy of %r into %s may have landed; listing forms", form.name, practice_id)
                have = _present(await self.partner.forms.list(practice=practice_id))
                if wanted in have:
                    return have
            else:
                return have | {wanted}
        raise AssertionError("unreachable")  # pragma: no cover


def _present(forms: list[FormTemplate]) -> set[tuple[str | None, str | None]]:
    """A copy keeps its master's Name and Type, and nothing else tells which master it came from."""
    return {(f.name, f.type) for f in forms if not f.archived}
