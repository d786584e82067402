"""参数设置 (/console/params): every SPEC §2 parameter as the ledger has it, edits checked by the
core's own validation with the error beside the field, a preview that runs the simulator on
both parameter sets (the same scenario and seed), and saving as one journaled set_params
command, by admin only. Checked in the ledger through the API afterwards."""

import html
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser

from tests.support.web import (
    DESKTOP,
    SHOTS,
    Visit,
    WebServer,
    csrf_of,
    seeded_web_server,
    staff_login,
    visit,
)
from tokenmall.core.params import Params
from tokenmall.services import param_preview
from tokenmall.sim.runner import run_job

SHOT = SHOTS / "console-params.png"
HX = {"HX-Request": "true"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    alice = {"op": "register", "user": "alice"}
    with seeded_web_server(tmp_path_factory.mktemp("params"), [alice]) as started:
        yield started


def head(server: WebServer) -> int:
    found: int = server.http.get("/healthz").json()["head"]
    return found


def thresholds(server: WebServer) -> list[str]:
    return [row["threshold_ep"] for row in server.get("/v1/levels")]


def opened(server: WebServer, username: str) -> tuple[httpx.Client, str]:
    client = server.staff_client(username)
    page = client.get("/console/params")
    assert page.status_code == 200, page.text
    return client, csrf_of(page.text)


def figures(page: str) -> dict[str, tuple[str, str]]:
    """The preview's table: {figure: (now, proposed)} as shown."""
    rows = re.findall(
        r'data-figure="(\w+)"><td>[^<]*</td><td class="num" data-side="old">([^<]*)</td>'
        r'<td class="num" data-side="new">([^<]*)</td>',
        page,
    )
    return {key: (old, new) for key, old, new in rows}


def save_fields(page: str) -> dict[str, str]:
    """The save form the preview offers: the previewed change and the state it was made on."""
    changes = re.search(r'name="changes" value="([^"]*)"', page)
    base = re.search(r'name="base" value="([^"]*)"', page)
    assert changes is not None and base is not None, "the preview offers no save form"
    return {"changes": html.unescape(changes[1]), "base": base[1]}


def test_every_staff_role_sees_every_parameter_only_admin_may_save(server: WebServer) -> None:
    for username in ("help", "fin", "boss"):
        client, _csrf = opened(server, username)
        page = client.get("/console/params").text
        for name, value in Params().as_json().items():
            assert f'data-testid="now-{name}"' in page, name
            if isinstance(value, str):
                assert value in page, (name, value)
        assert "参数设置" in page and "分红" in page
        assert ("只有管理员" in page) == (username != "boss")


def test_the_preview_shows_what_the_simulator_gives_for_each_side(server: WebServer) -> None:
    client, csrf = opened(server, "fin")  # finance may preview (it changes nothing)
    before = head(server)
    answer = client.post(
        "/console/params/preview",
        data={"csrf": csrf, "dividend_rate": "0.30", "referral_rates": "0.10, 0.05"},
        headers=HX,
    )
    assert answer.status_code == 200 and 'id="params-editor"' in answer.text
    shown = figures(answer.text)
    old = Params()
    new = old.with_overrides({"dividend_rate": "0.30", "referral_rates": ["0.10", "0.05"]})
    for side, params in ((0, old), (1, new)):
        # The simulator run directly: `tokenmall simulate`'s job, same scenario and seed.
        _point, _run, rows, summary = run_job(param_preview.preview_job(params))
        assert shown["platform_result"][side] == f"{summary['platform_result']:,.2f}"
        assert shown["final_price"][side] == f"{summary['final_price']:,.4f}"
        assert shown["share_in_profit"][side] == f"{summary['share_in_profit']:.1%}"
        dividends = round(sum(row["dividends"] for row in rows), 2)
        assert shown["dividends"][side] == f"{dividends:,.2f}"
        assert shown["pool"][side] == f"{rows[-1]['pool']:,.2f}"
        assert shown["orders"][side] == f"{summary['orders']:,.0f}"
    assert shown["dividends"][0] != shown["dividends"][1]
    assert 'data-chart="price-chart-' in answer.text
    assert "只有管理员" in answer.text and 'name="changes"' not in answer.text
    assert head(server) == before  # a preview changes nothing


def test_an_invalid_value_is_refused_beside_its_field_and_nothing_changes(
    server: WebServer,
) -> None:
    client, csrf = opened(server, "boss")
    before, levels = head(server), thresholds(server)
    answer = client.post(
        "/console/params/preview",
        data={
            "csrf": csrf,
            "buyer_share": "0.95",  # with 0.10 of referrals an order would lower the price
            "referral_rates": "0.10",
            "withdraw_min": "1.005",
            "level_thresholds": "300, 100",
            "collectible_lock_days": "forever",
        },
        headers=HX,
    )
    assert answer.status_code == 200
    errors = dict(re.findall(r'data-testid="error-(\w+)">([^<]*)<', answer.text))
    assert set(errors) == {
        "buyer_share",
        "withdraw_min",
        "level_thresholds",
        "collectible_lock_days",
    }
    assert "不得降低价格" in errors["buyer_share"]  # the core's rule, in Chinese
    assert "严格递增" in errors["level_thresholds"]
    assert 'name="changes"' not in answer.text and 'value="forever"' in answer.text
    plain = client.post("/console/params/preview", data={"csrf": csrf, "dividend_rate": "2"})
    assert plain.status_code == 422 and 'data-testid="error-dividend_rate"' in plain.text
    # A forged save of an invalid set, and of the fixed initial price: refused, nothing saved.
    base = save_fields(
        client.post(
            "/console/params/preview", data={"csrf": csrf, "dividend_rate": "0.25"}, headers=HX
        ).text
    )["base"]
    for changes in ('{"sell_fee_rate": "1"}', '{"initial_price": "2"}', "[1]", "not json"):
        forged = client.post(
            "/console/params",
            data={"csrf": csrf, "key": "bad", "changes": changes, "base": base},
        )
        assert forged.status_code in (400, 422), (changes, forged.status_code)
        assert "未保存" in forged.text or "预览" in forged.text
    assert head(server) == before and thresholds(server) == levels


def test_support_and_finance_cannot_save(server: WebServer) -> None:
    admin, admin_csrf = opened(server, "boss")
    preview = admin.post(
        "/console/params/preview", data={"csrf": admin_csrf, "sell_fee_rate": "0.20"}, headers=HX
    )
    fields = save_fields(preview.text)
    before = head(server)
    for username in ("help", "fin"):
        client, csrf = opened(server, username)
        forged = client.post("/console/params", data={"csrf": csrf, "key": "x", **fields})
        assert forged.status_code == 403, (username, forged.status_code)
    assert head(server) == before


def test_admin_saves_a_previewed_change_as_one_journaled_command(server: WebServer) -> None:
    client, csrf = opened(server, "boss")
    new_levels = "50, 300, 1000, 3000, 10000, 30000, 100000, 300000, 1000000, 3000000"
    preview = client.post(
        "/console/params/preview",
        data={"csrf": csrf, "level_thresholds": new_levels, "dividend_rate": "0.25"},
        headers=HX,
    )
    shown = figures(preview.text)
    assert (
        shown["final_price"][0] != shown["final_price"][1]
        or shown["dividends"][0] != (shown["dividends"][1])
    )
    fields = save_fields(preview.text)
    before = head(server)
    saved = client.post("/console/params", data={"csrf": csrf, "key": "save-1", **fields})
    assert saved.status_code == 303
    assert client.get(saved.headers["location"]).text.count('data-testid="saved"') == 1
    again = client.post("/console/params", data={"csrf": csrf, "key": "save-1", **fields})
    assert again.status_code == 409  # the parameters changed since that preview
    assert head(server) == before + 1  # one set_params, once
    assert thresholds(server)[0] == "50.00000000"
    page = client.get("/console/params").text
    assert re.search(r'data-testid="now-dividend_rate">\s*0\.25\s*<', page)
    # The next preview compares against the saved parameters.
    back = client.post(
        "/console/params/preview", data={"csrf": csrf, "dividend_rate": "0.20"}, headers=HX
    )
    assert "0.25" in back.text and figures(back.text)


def test_one_preview_at_a_time() -> None:
    with param_preview.PREVIEW_LOCK, pytest.raises(param_preview.PreviewBusy):
        param_preview.run_preview(Params(), Params())
    old, new = param_preview.run_preview(Params(), Params())  # free again
    assert param_preview.compared(old) == param_preview.compared(new)


def test_preview_and_save_in_a_browser(
    server: WebServer, visits: list[Visit], browser: Browser
) -> None:
    one = visit(browser, server, DESKTOP)
    visits.append(one)
    page = staff_login(one, "boss")
    page.on("dialog", lambda dialog: dialog.accept())
    one.go("/console/params")
    page.fill("#p-dividend_rate", "abc")
    page.click("[data-testid=preview]")
    page.wait_for_selector("[data-testid=error-dividend_rate]")
    page.fill("#p-dividend_rate", "0.30")
    page.fill("#p-referral_rates", "0.10, 0.05")
    page.click("[data-testid=preview]")
    page.wait_for_selector("[data-testid=comparison]")
    page.wait_for_selector("[data-testid=price-chart] canvas")
    assert page.locator("[data-testid=error-dividend_rate]").count() == 0
    page.screenshot(path=str(SHOT), full_page=True)
    page.click("[data-testid=save]")
    page.wait_for_selector("[data-testid=saved]")
    assert "已保存" in page.inner_text("[data-testid=saved]")
    assert "0.3" in page.inner_text("[data-testid=now-dividend_rate]")
    assert "0.1, 0.05" in page.inner_text("[data-testid=now-referral_rates]")


def test_total_issuance_may_not_fall_below_what_is_issued() -> None:
    issued_units = 500 * 10**8  # 500 EP
    edit = param_preview.overrides_of(Params().as_json(), {"total_issuance": "499"}, issued_units)
    assert edit.errors == {"total_issuance": "total_issuance below EP already issued"}
    assert edit.new is None and edit.overrides == {}
    fine = param_preview.overrides_of(Params().as_json(), {"total_issuance": "500"}, issued_units)
    assert fine.errors == {} and fine.overrides == {"total_issuance": "500.00000000"}
