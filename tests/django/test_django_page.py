"""Django and the page: a project's own ``geofence/blocked.html`` gets the whole context (the
reference, the page's language and direction, per-rule answers) and wins over ``[page]
template``, whose page is what the shipped template prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.test import Client, override_settings
from scenarios.table import BROWSER_ACCEPT, CN, PAGE, RU, RU_MESSAGE, RU_URL, TEMPLATE

from geofence.http import PAGE_CSP, TEMPLATE_CSP
from geofence_django import responses

OVERRIDE = (
    "<html lang='{{ lang }}' dir='{{ dir }}'><h1>{{ heading }}</h1>"
    "<p lang='{{ message_lang|default:lang }}'>{{ message }}</p>"
    "<a href='{{ info_url }}'>{{ more_information }}</a>"
    "<p>{{ advice }} <code>{{ ref }}</code></p>"
    "<small>{{ status }} {{ code }} {{ status_line }}</small></html>"
)


def templates(tmp_path: Path, text: str) -> list[dict[str, Any]]:
    (tmp_path / "geofence").mkdir(parents=True)
    (tmp_path / "geofence" / "blocked.html").write_text(text, encoding="utf-8")
    return [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [str(tmp_path)],
            "APP_DIRS": True,
        }
    ]


def browser(language: str) -> dict[str, str]:
    return {"accept": BROWSER_ACCEPT, "accept-language": language}


def test_an_override_gets_the_reference_language_and_the_rules_answer(tmp_path: Path) -> None:
    with override_settings(GEOFENCE=PAGE, TEMPLATES=templates(tmp_path, OVERRIDE)):
        response = Client(REMOTE_ADDR=RU).get("/anything", headers=browser("fa"))
        head = Client(REMOTE_ADDR=RU).head("/anything", headers=browser("fa"))
    ref = response.wsgi_request.geofence.ref  # type: ignore[attr-defined]
    assert ref is not None and len(ref) == 11
    page = response.content.decode()
    assert response.status_code == 403
    assert page == (
        "<html lang='fa' dir='rtl'><h1>در منطقهٔ شما در دسترس نیست</h1>"
        f"<p lang='fa'>{RU_MESSAGE['fa']}</p>"
        f"<a href='{RU_URL}'>اطلاعات بیشتر</a>"
        "<p>اگر فکر می‌کنید اشتباهی رخ داده است، با پشتیبانی تماس بگیرید و این کد پیگیری را "
        f"به آن‌ها بدهید: <code>{ref}</code></p>"
        "<small>403 ru_not_served خطای 403 · دسترسی ممنوع</small></html>"
    )
    assert response["Content-Language"] == "fa"
    assert response["Vary"] == "Accept, Accept-Language"
    assert response["Content-Security-Policy"] == TEMPLATE_CSP
    assert response["Content-Length"] == str(len(response.content))
    assert head.content == b"" and head["Content-Length"] == response["Content-Length"]


def test_an_override_wins_over_the_page_template(tmp_path: Path) -> None:
    config = {**PAGE, "page": {"template": TEMPLATE}}
    text = "<main>{{ default_page }}</main><p>{{ ref }}</p>"
    with override_settings(GEOFENCE=config, TEMPLATES=templates(tmp_path, text)):
        response = Client(REMOTE_ADDR=CN).get("/web/home", headers=browser("zh-HK"))
    ref = response.wsgi_request.geofence.ref  # type: ignore[attr-defined]
    page = response.content.decode()
    # default_page is the core's page: here the [page] template, rendered.
    assert page.startswith('<main><!DOCTYPE html>\n<html lang="zh-Hant" dir="ltr" data-test=')
    assert page.endswith(f"</main><p>{ref}</p>")
    assert f"<kbd>{ref}</kbd>" in page
    assert response["Content-Security-Policy"] == TEMPLATE_CSP


def test_without_an_override_the_page_template_is_served(tmp_path: Path) -> None:
    with override_settings(GEOFENCE={**PAGE, "page": {"template": TEMPLATE}}):
        response = Client(REMOTE_ADDR=CN).get("/web/home", headers=browser("ar"))
    assert b'<html lang="ar" dir="rtl" data-test="operator-template">' in response.content
    assert response["Content-Security-Policy"] == TEMPLATE_CSP


def test_the_shipped_template_is_not_rendered_per_request(monkeypatch: Any) -> None:
    rendered: list[object] = []
    real = responses.get_template

    def spy(name: str) -> Any:
        template = real(name)
        original = template.render
        template.render = lambda *a, **k: rendered.append(a) or original(*a, **k)
        return template

    monkeypatch.setattr(responses, "get_template", spy)
    with override_settings(GEOFENCE=PAGE):
        response = Client(REMOTE_ADDR=CN).get("/web/home", headers=browser("ko"))
    assert response.status_code == 451
    assert response["Content-Language"] == "ko"
    assert response["Content-Security-Policy"] == PAGE_CSP
    assert rendered == []  # the core's bytes as they are


def test_check_i001_says_which_page_wins(tmp_path: Path) -> None:
    from django.core.checks import run_checks

    config = {**PAGE, "page": {"template": TEMPLATE}}
    with override_settings(GEOFENCE=config, TEMPLATES=templates(tmp_path, "{{ default_page }}")):
        found = [m for m in run_checks() if m.id == "geofence_django.I001"]
    assert len(found) == 1
    assert TEMPLATE in found[0].msg and str(tmp_path) in found[0].msg
    assert "{{ default_page }}" in (found[0].hint or "")
    # Only one of the two: nothing to say.
    with override_settings(GEOFENCE=config):
        assert not [m for m in run_checks() if m.id.startswith("geofence_django.I")]
    with override_settings(GEOFENCE=PAGE, TEMPLATES=templates(tmp_path / "x", "mine")):
        assert not [m for m in run_checks() if m.id.startswith("geofence_django.I")]
