"""The configuration of per-rule answers and of ``[page]``: every error names its key and the
fix; good values are normalised (DESIGN "Configuration schema")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from geofence import ConfigError, load_policy
from geofence.config import DEFAULT_MESSAGE
from geofence.http._locale import SHIPPED


def rule(**fields: Any) -> dict[str, Any]:
    return {"rules": [{"name": "r", "action": "block", "regions": ["CN"], **fields}]}


# (config, key path, fragments of the reason: what is wrong and how to fix it)
BAD: list[tuple[dict[str, Any], str, tuple[str, ...]]] = [
    # per-rule code
    (rule(code="VPN-blocked"), "rules[0].code", ("not an error code", '"vpn_not_allowed"')),
    (rule(code=""), "rules[0].code", ("not an error code", "lower-case letters")),
    (rule(code="1abc"), "rules[0].code", ("starting with a letter",)),
    (rule(code="a" * 65), "rules[0].code", ("at most 64",)),
    (rule(code=7), "rules[0].code", ("not an error code",)),
    # per-rule info_url
    (rule(info_url="/vpn"), "rules[0].info_url", ("not an absolute http(s) URL", "write e.g.")),
    (rule(info_url="javascript:alert(1)"), "rules[0].info_url", ("not an absolute http(s) URL",)),
    (rule(info_url='https://x.example/"a'), "rules[0].info_url", ("percent-encode it (%22)",)),
    (rule(info_url="https://x.example/caf\u00e9"), "rules[0].info_url", ("percent-encode",)),
    (rule(info_url=3), "rules[0].info_url", ("expected an absolute http(s) URL",)),
    # per-rule message: a string, or a table of shipped languages
    (rule(message=""), "rules[0].message", ("is empty", "write the sentence")),
    (rule(message=5), "rules[0].message", ("expected a string, or a table of language -> text",)),
    (rule(message={}), "rules[0].message", ("empty table", 'write {en = "..."')),
    (rule(message={"de": "Nein"}), "rules[0].message.de", ("not a language", "ships pages in")),
    (rule(message={"zh-CN": "不"}), "rules[0].message.zh-CN", ("write 'zh-Hans'",)),
    (rule(message={"zh-TW": "不"}), "rules[0].message.zh-TW", ("write 'zh-Hant'",)),
    (rule(message={"en-US": "No"}), "rules[0].message.en-US", ("write 'en'",)),
    (rule(message={"en": "No", "EN": "Nope"}), "rules[0].message.EN", ("repeats the language",)),
    (rule(message={"en": ""}), "rules[0].message.en", ("is empty",)),
    (rule(message={"en": 1}), "rules[0].message.en", ("expected a string",)),
    (rule(message={"en": "a\x07b"}), "rules[0].message.en", ("control character",)),
    # the policy's message table
    ({"message": {"xx": "?"}}, "message.xx", ("not a language geofence ships a page for",)),
    ({"message": {}}, "message", ("empty table",)),
    # [page]
    ({"page": []}, "page", ("expected",)),
    ({"page": {"language": ["en"]}}, "page.language", ("unknown key", "'languages'")),
    ({"page": {"languages": []}}, "page.languages", ("is empty", "or omit it")),
    ({"page": {"languages": "en"}}, "page.languages", ("expected",)),
    ({"page": {"languages": ["en", "de"]}}, "page.languages[1]", ("ships pages in",)),
    ({"page": {"languages": ["zh-HK"]}}, "page.languages[0]", ("write 'zh-Hant'",)),
    (
        {"page": {"languages": ["en", "fa"], "default_language": "es"}},
        "page.default_language",
        ("not in page.languages", "add it there or pick one of en, fa"),
    ),
    ({"page": {"default_language": "xx"}}, "page.default_language", ("ships pages in",)),
    ({"page": {"template": ""}}, "page.template", ("is empty",)),
    ({"page": {"template": 5}}, "page.template", ("expected a file path",)),
]


@pytest.mark.parametrize(
    ("config", "key", "fragments"), BAD, ids=[f"{i}-{k}" for i, (_, k, _) in enumerate(BAD)]
)
def test_bad_config_names_the_key_and_the_fix(
    config: dict[str, Any], key: str, fragments: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_policy(config)
    assert caught.value.key == key, str(caught.value)
    for fragment in fragments:
        assert fragment in caught.value.reason, str(caught.value)
    assert str(caught.value).startswith(f"{key}: ")


def write(tmp_path: Path, data: bytes | str, name: str = "blocked.html") -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("<p>$msg</p>", ("line 1", "unknown placeholder $msg", "$heading, $message")),
        ("<p>\n\n${colour}</p>", ("line 3", "unknown placeholder $colour")),
        ("<p>costs 5 $</p>", ("line 1", "a lone '$'", "write '$$'")),
        ("<p>$1</p>", ("a lone '$'",)),
    ],
)
def test_bad_template_text(tmp_path: Path, text: str, fragments: tuple[str, ...]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_policy({"page": {"template": str(path)}})
    assert caught.value.key == "page.template"
    for fragment in fragments:
        assert fragment in caught.value.reason, str(caught.value)


def test_template_file_problems(tmp_path: Path) -> None:
    cases = [
        (str(tmp_path / "missing.html"), ("cannot read", "check the path")),
        (str(write(tmp_path, b"\xff\xfe<p>", "latin.html")), ("not UTF-8", "save it as UTF-8")),
        (str(write(tmp_path, "x" * 100_001, "big.html")), ("larger than", "keep the page small")),
        (str(tmp_path), ("cannot read",)),  # a directory
    ]
    for value, fragments in cases:
        with pytest.raises(ConfigError) as caught:
            load_policy({"page": {"template": value}})
        assert caught.value.key == "page.template"
        for fragment in fragments:
            assert fragment in caught.value.reason, str(caught.value)


def test_good_page_and_answers_are_normalised(tmp_path: Path) -> None:
    path = write(tmp_path, "<h1>$heading</h1> $$ ${ref} $message $info_url $lang $dir $status")
    policy = load_policy(
        {
            "message": {"FA": "نه", "ZH-hans": "不", "es": "No"},
            "page": {"languages": ["FA", "zh-hans", "es"], "template": str(path)},
            **rule(code="vpn_not_allowed", message="VPN", info_url="https://x.example/v"),
        }
    )
    assert policy.page.languages == ("fa", "zh-Hans", "es")
    # Without "en" among the languages, the default is the first one offered.
    assert policy.page.default_language == "fa"
    assert policy.page.template == path.read_text(encoding="utf-8")
    assert policy.page.template_path == str(path)
    assert dict(policy.messages.by_language) == {"fa": "نه", "zh-Hans": "不", "es": "No"}
    # JSON's text: English when given, else the default language's.
    assert policy.messages.text == "نه" and policy.messages.own
    rule_policy = policy.rules[0]
    assert (rule_policy.code, rule_policy.info_url) == ("vpn_not_allowed", "https://x.example/v")
    assert rule_policy.message is not None
    assert (rule_policy.message.text, rule_policy.message.own) == ("VPN", True)


def test_defaults() -> None:
    policy = load_policy({})
    assert policy.page.languages == SHIPPED
    assert policy.page.default_language == "en"
    assert policy.page.template is None
    assert (policy.messages.text, policy.messages.own) == (DEFAULT_MESSAGE, False)
    plain = load_policy(rule()).rules[0]
    assert (plain.code, plain.message, plain.info_url) == (None, None, None)


def test_template_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    write(tmp_path / "templates", "<p>$message</p>")
    config = tmp_path / "geofence.toml"
    config.write_text('[page]\ntemplate = "templates/blocked.html"\n', encoding="utf-8")
    policy = load_policy(str(config))
    assert policy.page.template == "<p>$message</p>"
    assert policy.page.template_path == str(tmp_path / "templates" / "blocked.html")
