"""The fake's handlers for the API, one function per resource, each keyed by the spec's operationIds.

A handler reads the request through its context (the body as the operation's generated model, already
checked against the spec), applies the state's rules and renders the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response

from ._http import Ctx, Handler, base_url, int_query, ok

if TYPE_CHECKING:
    from ._fake import FakeIntakeQ


def api_handlers(fake: FakeIntakeQ) -> dict[str, Handler]:
    """Every operation the fake answers, by operationId."""
    return {
        **practice_handlers(fake),
        **form_handlers(fake),
        **practitioner_handlers(fake),
        **assistant_handlers(fake),
        **intake_handlers(fake),
    }


def practice_handlers(fake: FakeIntakeQ) -> dict[str, Handler]:
    """Practices: create, update, list, delete, their keys and sign-in tokens."""
    state = fake.state

    async def list_practices(ctx: Ctx) -> Response:
        found = state.list_practices(
            ctx.query("id"),
            ctx.query("email"),
            ctx.query("externalPracticeId"),
            int_query(ctx, "page"),
            fake.page_size,
        )
        return JSONResponse([p.to_wire(state.stamp) for p in found])

    async def create_practice(ctx: Ctx) -> Response:
        return JSONResponse(state.create_practice(await ctx.body()).to_wire(state.stamp))

    async def update_practice(ctx: Ctx) -> Response:
        return JSONResponse(state.update_practice(await ctx.body()).to_wire(state.stamp))

    async def delete_practice(ctx: Ctx) -> Response:
        state.delete_practice(state.practice(ctx.params["practiceId"]))
        return ok()

    async def practice_key(ctx: Ctx) -> Response:
        return JSONResponse({"ApiKey": state.practice(ctx.params["practiceId"]).key})

    async def ephemeral(ctx: Ctx) -> Response:
        practice = state.practice(ctx.params["practiceId"])
        value, token = state.issue_ephemeral_token(practice, ctx.query("userId"))
        return JSONResponse({"Token": value, "UserId": token.user_id})

    return {
        "list_practices": list_practices,
        "create_practice": create_practice,
        "update_practice": update_practice,
        "delete_practice": delete_practice,
        "get_practice_api_key": practice_key,
        "get_ephemeral_token": ephemeral,
    }


def form_handlers(fake: FakeIntakeQ) -> dict[str, Handler]:
    """Forms: the master forms, a practice's forms, and copying one into a practice."""
    state = fake.state

    async def master_forms(ctx: Ctx) -> Response:
        return JSONResponse([f.to_wire() for f in state.master_forms.values()])

    async def practice_forms(ctx: Ctx) -> Response:
        return JSONResponse([f.to_wire() for f in state.practice(ctx.params["practiceId"]).forms.values()])

    async def copy_form(ctx: Ctx) -> Response:
        return JSONResponse(state.copy_form(await ctx.body()).to_wire())

    return {
        "list_master_forms": master_forms,
        "list_practice_forms": practice_forms,
        "copy_form": copy_form,
    }


def practitioner_handlers(fake: FakeIntakeQ) -> dict[str, Handler]:
    """Practitioners: create, update, list, enable and disable, delete, transfers."""
    state = fake.state

    async def list_practitioners(ctx: Ctx) -> Response:
        everyone = (ctx.query("includeInactive") or "false").lower() == "true"  # its type was checked
        found = [p for p in ctx.own_practice.practitioners.values() if everyone or not p.is_inactive]
        found = state.page_of(found, int_query(ctx, "page"), fake.page_size)
        return JSONResponse([p.to_wire(state.stamp) for p in found])

    async def create_practitioner(ctx: Ctx) -> Response:
        return JSONResponse(state.create_practitioner(ctx.own_practice, await ctx.body()).to_wire(state.stamp))

    async def update_practitioner(ctx: Ctx) -> Response:
        return JSONResponse(state.update_practitioner(ctx.own_practice, await ctx.body()).to_wire(state.stamp))

    def practitioner_flag(inactive: bool) -> Handler:
        async def handler(ctx: Ctx) -> Response:
            state.practitioner(ctx.own_practice, ctx.params["practitionerId"]).is_inactive = inactive
            return ok()

        return handler

    async def delete_practitioner(ctx: Ctx) -> Response:
        practice = ctx.own_practice
        state.delete_practitioner(practice, state.practitioner(practice, ctx.params["practitionerId"]))
        return ok()

    def transfer(data: bool) -> Handler:
        async def handler(ctx: Ctx) -> Response:
            practice = ctx.own_practice
            source = state.practitioner(practice, ctx.params["sourcePractitionerId"])
            destination = state.practitioner(practice, ctx.params["destinationPractitionerId"])
            state.transfer(practice, source, destination, data)
            return ok()

        return handler

    return {
        "list_practitioners": list_practitioners,
        "create_practitioner": create_practitioner,
        "update_practitioner": update_practitioner,
        "disable_practitioner": practitioner_flag(True),
        "enable_practitioner": practitioner_flag(False),
        "delete_practitioner": delete_practitioner,
        "transfer_practitioner_data": transfer(True),
        "transfer_client_ownership": transfer(False),
    }


def assistant_handlers(fake: FakeIntakeQ) -> dict[str, Handler]:
    """Assistants: create, update, list and delete."""
    state = fake.state

    async def list_assistants(ctx: Ctx) -> Response:
        found = state.page_of(list(ctx.own_practice.assistants.values()), int_query(ctx, "page"), fake.page_size)
        return JSONResponse([a.to_wire(state.stamp) for a in found])

    async def create_assistant(ctx: Ctx) -> Response:
        return JSONResponse(state.create_assistant(ctx.own_practice, await ctx.body()).to_wire(state.stamp))

    async def update_assistant(ctx: Ctx) -> Response:
        return JSONResponse(state.update_assistant(ctx.own_practice, await ctx.body()).to_wire(state.stamp))

    async def delete_assistant(ctx: Ctx) -> Response:
        assistant = state.assistant(ctx.own_practice, ctx.params["assistantId"])
        del ctx.own_practice.assistants[assistant.id]
        return ok()

    return {
        "list_assistants": list_assistants,
        "create_assistant": create_assistant,
        "update_assistant": update_assistant,
        "delete_assistant": delete_assistant,
    }


def intake_handlers(fake: FakeIntakeQ) -> dict[str, Handler]:
    """Intake forms and the tokens that sign a client into one."""
    state = fake.state

    async def create_intake(ctx: Ctx) -> Response:
        return JSONResponse(state.create_intake(ctx.own_practice, await ctx.body(), base_url(ctx)).to_wire(state.stamp))

    async def intake_token(ctx: Ctx) -> Response:
        intake_id = ctx.params["intakeId"]
        value, token = state.form_token(ctx.own_practice, intake_id)
        url = f"{base_url(ctx)}/intake/{intake_id}"
        return JSONResponse({"Token": value, "Url": url, "Expiration": state.stamp(token.expires, "iso")})

    return {
        "create_intake": create_intake,
        "create_intake_token": intake_token,
    }
