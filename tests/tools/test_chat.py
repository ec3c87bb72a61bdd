"""`patchwire chat` and the chat loop, against scripted model servers on loopback.

No real model is involved: :mod:`tests.support.scripted_llm` plays the model (an
OpenAI-compatible endpoint and an Anthropic-shaped one) and records what it was sent, while
the tools run for real against the sandbox APIs through the invoker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from patchwire import Patchwire
from patchwire.errors import ConfigError
from patchwire.sandbox import Sandbox
from patchwire.sandbox._payments import PaymentsApi
from patchwire.tools import ToolInvoker
from patchwire.tools._chat import (
    NO_KEY,
    AnthropicChatClient,
    ChatClient,
    ChatError,
    ChatSession,
    ChatTurn,
    OpenAIChatClient,
    make_client,
    terminal_confirm,
)
from tests.support.cli import Cli
from tests.support.leaks import leaks_in, leaks_in_files, new_canary
from tests.support.scripted_llm import (
    AnthropicServer,
    Call,
    Failure,
    OpenAIServer,
    ScriptedLLM,
    call,
    calls,
    say,
)
from tests.support.settings import local_settings

#: no turn of these tests takes this long; a hang fails the test instead of the suite
TURN_TIMEOUT_S = 30.0
MODEL = "scripted-model"


@pytest.fixture
def llm_key() -> str:
    """The model provider's API key for this test: unique, so finding it is a leak."""
    return new_canary("llmkey")


@pytest.fixture(params=["openai", "anthropic"])
async def llm(request: pytest.FixtureRequest) -> AsyncIterator[ScriptedLLM]:
    """A scripted model server of each provider; tests add its script."""
    server: ScriptedLLM = OpenAIServer() if request.param == "openai" else AnthropicServer()
    async with server:
        yield server


@pytest.fixture
async def openai_llm() -> AsyncIterator[OpenAIServer]:
    async with OpenAIServer() as server:
        yield server


def client_for(llm: ScriptedLLM, key: str = "test-key") -> ChatClient:
    if isinstance(llm, OpenAIServer):
        return OpenAIChatClient(model=MODEL, api_key=key, base_url=llm.base_url,
                                timeout=10, max_retries=0)
    return AnthropicChatClient(model=MODEL, api_key=key, base_url=llm.base_url,
                               timeout=10, max_retries=0)


def session_for(pw: Patchwire, llm: ScriptedLLM, **options: Any) -> ChatSession:
    return ChatSession(ToolInvoker(pw), client_for(llm, options.pop("key", "test-key")),
                       **options)


async def send(session: ChatSession, text: str) -> ChatTurn:
    return await asyncio.wait_for(session.send(text), TURN_TIMEOUT_S)


def refundable_charge(sandbox: Sandbox) -> dict[str, Any]:
    payments = cast(PaymentsApi, sandbox.state.apis["payments"])
    return next(c for c in payments.charges.values() if c["amount_refunded"] == 0)


# -- tool calls reach the sandbox and their results reach the model ---------------------------


async def test_a_tool_call_reaches_the_sandbox_and_its_result_is_sent_back_to_the_model(
        pw: Patchwire, sandbox: Sandbox, llm: ScriptedLLM) -> None:
    llm.add(call("shop_get_order", {"order_id": "42"}), say("Order 42 was refunded."))
    async with session_for(pw, llm) as session:
        turn = await send(session, "What happened to order 42?")

    assert turn.text == "Order 42 was refunded."
    assert [(c.name, c.arguments, c.status) for c in turn.tool_calls] == [
        ("shop_get_order", {"order_id": "42"}, "ok")]
    assert sandbox.stats.requests["shop"] == 1
    [result] = llm.tool_results(1)
    order = json.loads(result.text)
    assert (order["id"], order["status"]) == ("42", "refunded")
    assert result.is_error in (None, False)
    assert len(llm.requests) == 2


async def test_the_model_is_offered_the_catalog_in_its_providers_format(
        pw: Patchwire, llm: ScriptedLLM) -> None:
    llm.add(say("Hello."))
    async with session_for(pw, llm, system_prompt="Be brief.") as session:
        await send(session, "hi")

    sent = llm.requests[0]
    assert "shop_get_order" in llm.tool_names(0)
    assert "payments_refund_charge" in llm.tool_names(0)
    tools = {t["function"]["name"] if "function" in t else t["name"]: t for t in sent["tools"]}
    if isinstance(llm, OpenAIServer):
        get_order = tools["shop_get_order"]
        assert get_order["type"] == "function"
        assert get_order["function"]["strict"] is True
        assert get_order["function"]["parameters"]["additionalProperties"] is False
        assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    else:
        assert set(tools["shop_get_order"]) == {"name", "description", "input_schema"}
        assert sent["system"] == "Be brief."
        assert sent["max_tokens"] > 0
    assert sent["model"] == MODEL


async def test_a_catalog_scoped_to_one_connection_offers_only_its_tools(
        pw: Patchwire, llm: ScriptedLLM) -> None:
    llm.add(say("ok"))
    client = client_for(llm)
    async with ChatSession(ToolInvoker(pw, connections=["acme"]), client) as session:
        await send(session, "hi")
    assert llm.tool_names(0)
    assert all(name.startswith("shop_") for name in llm.tool_names(0))


async def test_several_tool_calls_of_one_reply_all_run_and_their_results_keep_the_call_order(
        pw: Patchwire, sandbox: Sandbox, llm: ScriptedLLM) -> None:
    llm.add(calls(Call("shop_get_order", {"order_id": "42"}, id="first"),
                  Call("shop_get_customer", {"customer_id": "cus_0009"}, id="second"),
                  Call("shop_get_order", {"order_id": "43"}, id="third")),
            say("Done."))
    async with session_for(pw, llm) as session:
        turn = await send(session, "Tell me about orders 42 and 43 and their customer.")

    assert [c.status for c in turn.tool_calls] == ["ok", "ok", "ok"]
    results = llm.tool_results(1)
    assert [r.call_id for r in results] == ["first", "second", "third"]
    assert json.loads(results[0].text)["id"] == "42"
    assert json.loads(results[1].text)["id"] == "cus_0009"
    assert json.loads(results[2].text)["id"] == "43"
    assert sandbox.stats.requests["shop"] == 3


async def test_a_conversation_keeps_its_history_across_messages(
        pw: Patchwire, llm: ScriptedLLM) -> None:
    llm.add(call("shop_get_order", {"order_id": "42"}), say("Refunded."), say("You're welcome."))
    async with session_for(pw, llm) as session:
        await send(session, "Order 42?")
        turn = await send(session, "Thanks")

    assert turn.text == "You're welcome."
    messages = llm.requests[2]["messages"]
    texts = json.dumps(messages)
    assert "Order 42?" in texts and "Refunded." in texts and "Thanks" in texts
    assert llm.tool_results(2) == []  # the results belong to the earlier exchange


# -- arguments the model gets wrong -----------------------------------------------------------


async def test_arguments_that_are_not_json_come_back_to_the_model_as_an_error_it_can_read(
        pw: Patchwire, sandbox: Sandbox, openai_llm: OpenAIServer) -> None:
    openai_llm.add(call("shop_get_order", '{"order_id": "42"'),
                   call("shop_get_order", {"order_id": "42"}), say("Refunded."))
    async with session_for(pw, openai_llm) as session:
        turn = await send(session, "Order 42?")

    assert [c.status for c in turn.tool_calls] == ["invalid_arguments", "ok"]
    [result] = openai_llm.tool_results(1)
    assert "not valid JSON" in result.text
    assert "shop_get_order" in result.text
    # the model's garbled call went back in the history exactly as it wrote it
    assistant = openai_llm.requests[1]["messages"][-2]
    assert assistant["tool_calls"][0]["function"]["arguments"] == '{"order_id": "42"'
    assert sandbox.stats.requests["shop"] == 1  # only the corrected call reached the shop
    assert turn.text == "Refunded."


async def test_arguments_that_break_the_schema_come_back_as_an_error_naming_the_field(
        pw: Patchwire, sandbox: Sandbox, llm: ScriptedLLM) -> None:
    llm.add(call("shop_get_order", {"order_id": 42}), say("Sorry."))
    async with session_for(pw, llm) as session:
        turn = await send(session, "Order 42?")

    assert [c.status for c in turn.tool_calls] == ["invalid_arguments"]
    [result] = llm.tool_results(1)
    assert "order_id" in result.text
    assert "nothing was done" in result.text
    assert result.is_error in (None, True)  # Anthropic: flagged; Chat Completions: no flag
    if isinstance(llm, AnthropicServer):
        assert result.is_error is True
    assert sandbox.stats.requests["shop"] == 0


async def test_a_tool_the_catalog_does_not_have_comes_back_as_an_error_listing_the_tools(
        pw: Patchwire, llm: ScriptedLLM) -> None:
    llm.add(call("shop_delete_everything"), say("I cannot."))
    async with session_for(pw, llm) as session:
        turn = await send(session, "Delete everything")

    assert [c.status for c in turn.tool_calls] == ["unknown_tool"]
    [result] = llm.tool_results(1)
    assert "shop_delete_everything" in result.text and "shop_get_order" in result.text


async def test_strict_mode_nulls_for_optional_arguments_are_dropped_before_the_call(
        pw: Patchwire, sandbox: Sandbox, openai_llm: OpenAIServer) -> None:
    # strict mode makes every property required and nullable: "not given" arrives as null
    openai_llm.add(call("payments_list_charges", {"customer": None, "limit": 2}),
                   say("Two charges."))
    async with session_for(pw, openai_llm) as session:
        turn = await send(session, "Latest two charges?")
    assert [c.status for c in turn.tool_calls] == ["ok"]
    assert len(json.loads(openai_llm.tool_results(1)[0].text)["data"]) == 2


# -- the approval gate ------------------------------------------------------------------------


async def test_a_refund_the_person_declines_is_not_run_and_the_model_is_told(
        pw: Patchwire, sandbox: Sandbox, llm: ScriptedLLM) -> None:
    charge = refundable_charge(sandbox)
    llm.add(call("payments_refund_charge", {"charge_id": charge["id"]}),
            say("The refund was declined."))
    asked: list[str] = []
    shown: list[str] = []

    def answer(prompt: str) -> str:
        asked.append(prompt)
        return "n"

    confirm = terminal_confirm(input_fn=answer, write=shown.append, decided_by="tester")
    async with session_for(pw, llm, confirm=confirm) as session:
        turn = await send(session, f"Refund {charge['id']}")

    assert asked == ["approve? [y/N] "]
    assert "payments_refund_charge" in shown[0] and charge["id"] in shown[0]
    assert [c.status for c in turn.tool_calls] == ["denied"]
    assert charge["amount_refunded"] == 0
    assert sandbox.stats.requests["payments"] == 0
    [result] = llm.tool_results(1)
    assert "denied" in result.text and "tester" in result.text
    if isinstance(llm, AnthropicServer):
        assert result.is_error is True


async def test_a_refund_the_person_approves_runs(
        pw: Patchwire, sandbox: Sandbox, llm: ScriptedLLM) -> None:
    charge = refundable_charge(sandbox)
    llm.add(call("payments_refund_charge", {"charge_id": charge["id"], "reason": "broken"}),
            say("Refunded."))
    confirm = terminal_confirm(input_fn=lambda prompt: "y", write=lambda text: None)
    async with session_for(pw, llm, confirm=confirm) as session:
        turn = await send(session, f"Refund {charge['id']}")

    [made] = turn.tool_calls
    assert made.status == "ok" and made.approval_id is not None
    assert charge["amount_refunded"] == charge["amount"]
    [result] = llm.tool_results(1)
    refund = json.loads(result.text)
    assert (refund["object"], refund["charge"]) == ("refund", charge["id"])
    assert result.is_error in (None, False)


async def test_without_a_person_to_ask_a_refund_becomes_a_pending_approval(
        pw: Patchwire, sandbox: Sandbox, llm: ScriptedLLM) -> None:
    charge = refundable_charge(sandbox)
    llm.add(call("payments_refund_charge", {"charge_id": charge["id"]}),
            say("It awaits approval."))
    async with session_for(pw, llm, session_id="chat-under-test") as session:
        turn = await send(session, f"Refund {charge['id']}")

    [made] = turn.tool_calls
    assert made.status == "pending_approval" and made.approval_id
    assert charge["amount_refunded"] == 0
    [result] = llm.tool_results(1)
    assert made.approval_id in result.text and "approval" in result.text
    pending = await ToolInvoker(pw).repository.list_approvals(status="pending")
    assert [(a.id, a.subject, a.session_id) for a in pending] == [
        (made.approval_id, "payments_refund_charge", "chat-under-test")]


async def test_an_end_of_input_at_the_approval_prompt_leaves_the_call_pending(
        pw: Patchwire, sandbox: Sandbox, openai_llm: OpenAIServer) -> None:
    charge = refundable_charge(sandbox)
    openai_llm.add(call("payments_refund_charge", {"charge_id": charge["id"]}), say("Pending."))

    def closed(prompt: str) -> str:
        raise EOFError

    confirm = terminal_confirm(input_fn=closed, write=lambda text: None)
    async with session_for(pw, openai_llm, confirm=confirm) as session:
        turn = await send(session, "Refund it")
    assert [c.status for c in turn.tool_calls] == ["pending_approval"]
    assert charge["amount_refunded"] == 0


async def test_two_calls_needing_approval_in_one_reply_are_asked_about_one_at_a_time(
        pw: Patchwire, sandbox: Sandbox, openai_llm: OpenAIServer) -> None:
    payments = cast(PaymentsApi, sandbox.state.apis["payments"])
    first, second = [c for c in payments.charges.values() if c["amount_refunded"] == 0][:2]
    openai_llm.add(calls(Call("payments_refund_charge", {"charge_id": first["id"]}),
                         Call("payments_refund_charge", {"charge_id": second["id"]})),
                   say("One refunded, one declined."))
    answers = iter(["y", "n"])
    shown: list[str] = []
    confirm = terminal_confirm(input_fn=lambda prompt: next(answers), write=shown.append)
    async with session_for(pw, openai_llm, confirm=confirm) as session:
        turn = await send(session, "Refund both")

    statuses = {json.dumps(c.arguments): c.status for c in turn.tool_calls}
    assert sorted(statuses.values()) == ["denied", "ok"]
    assert len(shown) == 2
    # whichever was asked first got the yes
    approved = first if first["id"] in shown[0] else second
    declined = second if approved is first else first
    assert approved["amount_refunded"] == approved["amount"]
    assert declined["amount_refunded"] == 0


# -- bounds and failures ----------------------------------------------------------------------


async def test_a_model_that_keeps_calling_tools_is_stopped_at_the_round_limit_and_told(
        pw: Patchwire, sandbox: Sandbox, llm: ScriptedLLM) -> None:
    llm.add(*(call("shop_get_order", {"order_id": str(40 + i)}) for i in range(3)))
    async with session_for(pw, llm, max_tool_rounds=2) as session:
        turn = await send(session, "Look at every order")
        assert turn.hit_tool_limit
        assert "2 round" in turn.text and "not run" in turn.text
        assert [c.status for c in turn.tool_calls] == ["ok", "ok", "not_run"]
        assert sandbox.stats.requests["shop"] == 2

        # the conversation goes on, and the model learns why its last call did not run
        llm.add(say("Here is what I found."))
        turn = await send(session, "Summarise")
    assert turn.text == "Here is what I found."
    [unanswered] = llm.tool_results(3)
    assert "limit" in unanswered.text


def test_a_tool_round_limit_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        ChatSession(cast(ToolInvoker, None), cast(ChatClient, None), max_tool_rounds=0)


async def test_an_http_error_from_the_provider_becomes_a_chat_error_without_the_key(
        pw: Patchwire, llm: ScriptedLLM, llm_key: str) -> None:
    llm.api_key = "the-right-key"  # the server answers 401, echoing the key it got
    async with session_for(pw, llm, key=llm_key) as session:
        with pytest.raises(ChatError) as caught:
            await send(session, "hi")
    message = str(caught.value)
    assert "401" in message and "API key" in message
    assert llm.keys == [llm_key]  # the key did go to the provider...
    assert leaks_in(message, llm_key) == []  # ...but not into the error
    assert caught.value.__cause__ is None


async def test_a_server_error_mid_conversation_leaves_the_conversation_usable(
        pw: Patchwire, llm: ScriptedLLM) -> None:
    llm.add(call("shop_get_order", {"order_id": "42"}), Failure(503, "overloaded"),
            say("Back again."))
    async with session_for(pw, llm) as session:
        with pytest.raises(ChatError, match="503"):
            await send(session, "Order 42?")
        turn = await send(session, "Still there?")
    assert turn.text == "Back again."
    # the tool result from before the failure is still in the history, answered
    assert llm.tool_results(1)[0].call_id == llm.tool_results(2)[0].call_id


async def test_a_provider_that_is_not_listening_becomes_a_chat_error(
        pw: Patchwire, llm: ScriptedLLM) -> None:
    base_url = llm.base_url
    await llm.stop()  # nothing listens on that port any more
    async with session_for(pw, llm) as session:
        with pytest.raises(ChatError, match="could not reach"):
            await send(session, "hi")
    assert "127.0.0.1" in base_url


async def test_a_reply_that_is_not_a_completion_becomes_a_chat_error(
        pw: Patchwire, llm: ScriptedLLM) -> None:
    llm.add(lambda body: Failure(200, "not a completion"))
    async with session_for(pw, llm) as session:
        with pytest.raises(ChatError, match=r"no choices|not a message"):
            await send(session, "hi")


# -- settings ---------------------------------------------------------------------------------


def test_a_missing_key_is_a_config_error_naming_the_variable_for_a_remote_endpoint() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        make_client("openai", model="m", environ={})
    with pytest.raises(ConfigError, match="MY_KEY"):
        make_client("anthropic", model="m", base_url="https://llm.example.com",
                    api_key_env="MY_KEY", environ={})


async def test_an_endpoint_on_loopback_runs_without_a_key(
        pw: Patchwire, llm: ScriptedLLM) -> None:
    llm.add(say("hi"))
    client = make_client(llm.provider, model=MODEL, base_url=llm.base_url, environ={},
                         max_retries=0)
    async with ChatSession(ToolInvoker(pw), client) as session:
        assert (await send(session, "hello")).text == "hi"
    assert llm.keys == [NO_KEY]


async def test_the_key_comes_from_the_named_environment_variable(
        pw: Patchwire, llm: ScriptedLLM, llm_key: str) -> None:
    llm.add(say("hi"))
    client = make_client(llm.provider, model=MODEL, base_url=llm.base_url,
                         api_key_env="CHAT_KEY", environ={"CHAT_KEY": llm_key}, max_retries=0)
    async with ChatSession(ToolInvoker(pw), client) as session:
        await send(session, "hello")
    assert llm.keys == [llm_key]


@pytest.mark.parametrize(("provider", "base_url", "message"), [
    ("gemini", None, "unknown provider"),
    ("openai", "ftp://127.0.0.1/v1", "http"),
    ("openai", "http://:80/v1", "http"),
])
def test_bad_chat_settings_are_config_errors(provider: str, base_url: str | None,
                                             message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_client(provider, model="m", base_url=base_url, environ={"OPENAI_API_KEY": "k"})


# -- the command ------------------------------------------------------------------------------


@pytest.fixture
async def cli(tmp_path: Path, sandbox: Sandbox, canary: str) -> Cli:
    """The ``patchwire`` command with a home holding connection ``acme`` (sandbox shop) and
    ``billing`` (sandbox payments)."""
    runner = Cli(tmp_path / "cli")
    async with Patchwire(local_settings(runner.home)) as pw:
        await pw.add_connection("shop", "acme", {"sandbox_url": sandbox.url, "api_key": canary})
        await pw.add_connection("payments", "billing", {"sandbox_url": sandbox.url,
                                                        "secret_key": "pk_test_sandbox"})
    return runner


def chat_args(llm: ScriptedLLM, *more: str) -> list[str]:
    return ["chat", "--base-url", llm.base_url, "--model", MODEL, "--provider", llm.provider,
            "--api-key-env", "CHAT_TEST_LLM_KEY", *more]


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_chat_once_answers_one_message_from_the_command_line(
        cli: Cli, sandbox: Sandbox, llm: ScriptedLLM, llm_key: str, canary: str) -> None:
    llm.add(call("shop_get_order", {"order_id": "42"}), say("Order 42 was refunded."))
    result = await cli(*chat_args(llm, "--connection", "acme", "--system", "Be brief.",
                                  "--once", "What happened to order 42?"),
                       env={"CHAT_TEST_LLM_KEY": llm_key})

    assert result.code == 0, result
    assert result.out == "Order 42 was refunded.\n"
    assert "shop_get_order ok" in result.flat_err
    assert llm.keys == [llm_key, llm_key]
    assert all(name.startswith("shop_") for name in llm.tool_names(0))
    assert json.loads(llm.tool_results(1)[0].text)["id"] == "42"
    assert sandbox.stats.requests["shop"] == 1
    for secret in (llm_key, canary):
        assert leaks_in(cli.transcript(), secret) == []
        assert leaks_in(llm.transcript(), secret) == []  # the shop key never reaches a model


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_chat_from_a_script_leaves_tools_needing_approval_pending(
        cli: Cli, sandbox: Sandbox, openai_llm: OpenAIServer) -> None:
    charge = refundable_charge(sandbox)
    openai_llm.add(call("payments_refund_charge", {"charge_id": charge["id"]}),
                   say("A person must approve the refund."))
    result = await cli(*chat_args(openai_llm, "--once", f"Refund {charge['id']}"))

    assert result.code == 0, result
    assert "payments_refund_charge pending_approval (approval" in result.flat_err
    assert "approve?" not in result.out + result.err  # nobody at a terminal was asked
    assert charge["amount_refunded"] == 0
    listed = await cli("approvals", "list", "--json")
    assert listed.code == 0, listed
    assert charge["id"] in listed.out


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_chat_reads_messages_until_quit(cli: Cli, llm: ScriptedLLM) -> None:
    llm.add(call("shop_get_order", {"order_id": "42"}), say("Refunded."), say("Bye."))
    result = await cli(*chat_args(llm), stdin="Order 42?\n\nThanks\n/quit\nnever sent\n")

    assert result.code == 0, result
    assert "assistant> Refunded." in result.out and "assistant> Bye." in result.out
    assert result.out.count("you> ") == 4  # the blank line is asked again, /quit ends it
    assert len(llm.requests) == 3
    assert "never sent" not in llm.transcript()


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_chat_ends_at_end_of_input(cli: Cli, openai_llm: OpenAIServer) -> None:
    openai_llm.add(say("Hi."))
    result = await cli(*chat_args(openai_llm), stdin="Hello")
    assert result.code == 0, result
    assert "assistant> Hi." in result.out


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_chat_keeps_going_after_a_provider_error(cli: Cli,
                                                       openai_llm: OpenAIServer) -> None:
    # a 400, which the SDK does not retry (it retries 5xx), so the script stays in step
    openai_llm.add(Failure(400, "boom", "invalid_request_error"), say("Better now."))
    result = await cli(*chat_args(openai_llm), stdin="one\ntwo\n")
    assert result.code == 0, result
    assert "HTTP 400" in result.flat_err and "boom" in result.flat_err
    assert "assistant> Better now." in result.out


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_the_api_key_never_appears_in_the_commands_output_or_errors(
        cli: Cli, llm: ScriptedLLM, llm_key: str) -> None:
    llm.api_key = "the-right-key"  # 401, and the error body echoes the key it was sent
    result = await cli(*chat_args(llm, "--once", "hi"), env={"CHAT_TEST_LLM_KEY": llm_key})

    assert result.code == 1, result
    assert "401" in result.flat_err
    assert llm.keys == [llm_key]
    assert leaks_in(cli.transcript(), llm_key) == []
    assert leaks_in_files(cli.home, llm_key) == {}


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_chat_without_a_key_for_a_remote_endpoint_says_which_variable_to_set(
        cli: Cli) -> None:
    result = await cli("chat", "--base-url", "https://llm.example.com/v1", "--model", "m",
                       "--once", "hi", env={"OPENAI_API_KEY": ""})
    assert result.code == 1, result
    assert "OPENAI_API_KEY" in result.flat_err


@pytest.mark.slow  # the patchwire command in a subprocess
async def test_chat_refuses_an_unknown_provider_and_an_unknown_connection(
        cli: Cli, openai_llm: OpenAIServer) -> None:
    bad_provider = await cli("chat", "--model", "m", "--provider", "gemini", "--once", "hi")
    assert bad_provider.code == 2, bad_provider
    assert "--provider" in bad_provider.flat_err
    unknown = await cli(*chat_args(openai_llm, "--connection", "nobody", "--once", "hi"))
    assert unknown.code == 1, unknown
    assert "nobody" in unknown.flat_err
    assert openai_llm.requests == []  # nothing was sent to the model
