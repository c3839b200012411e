"""What the page says, in the language negotiated for it.

The fixed words (heading, "What you can do", the status line...) come from the catalogues
shipped with geofence (:func:`geofence.http._locale.translator`). The message is the
operator's when they wrote one, and then it is never swapped for a translation they did not
write: a table of languages gives the page's language when it has it, else the closest one the
operator did write (the page's default language, English, the first entry), and the page marks
that text with its own ``lang``. Only geofence's own sentences are translated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from geofence._record import record
from geofence.http._locale import direction, translator

Kind = Literal["block", "suspended", "unavailable"]

HEADINGS = {
    "block": "Not available in your region",
    "suspended": "Account suspended",
    "unavailable": "Temporarily unavailable",
}
# geofence's own sentences (msgids): shown translated, unlike an operator's text.
BLOCK_MESSAGE = "This service is not available in your country, region, or territory."
# Deliberately says nothing of how many requests or from where: that is for the support desk.
SUSPENDED_MESSAGE = (
    "Access for this account is suspended because of repeated requests from a country, "
    "region, or territory where this service is not available."
)
# Deliberately generic: the cause (a database problem) is for the operator's log, not the client.
UNAVAILABLE_MESSAGE = "This service is temporarily unavailable. Please try again later."
# What the person can do, by kind; the reference follows each.
ADVICE = {
    "block": "If you think this is a mistake, contact support and give them this reference:",
    "suspended": (
        "If your account should not be suspended, contact support and give them this reference:"
    ),
    "unavailable": "Please try again in a few minutes.",
}
REASON_PHRASES = {
    451: "Unavailable For Legal Reasons",
    403: "Forbidden",
    503: "Service Unavailable",
}


@record(frozen=True, slots=True)
class Text:
    """A message as the responder holds it (the config's ``Message``, without importing the
    config package here: it imports this package).

    ``by_language``: the operator's table (shipped tag -> text), empty for one string;
    ``own``: False only for geofence's own default sentence, which may be translated.
    """

    text: str
    by_language: Mapping[str, str]
    own: bool


@record(frozen=True, slots=True)
class Wording:
    """Every word of one page, unescaped."""

    lang: str
    dir: Literal["ltr", "rtl"]
    heading: str
    message: str
    # The message's own language when it differs from the page's (the operator did not write
    # this language), else None.
    message_lang: str | None
    what_you_can_do: str
    more_information: str
    advice: str
    reference: str
    status_line: str


def wording(kind: Kind, status: int, lang: str, message: Text, default_language: str) -> Wording:
    """The words of the page of ``kind`` (with ``status``) in ``lang``; ``message`` is the
    block's (the rule's or the policy's; the other kinds have their own sentence)."""
    _ = translator(lang)
    if kind == "suspended":
        text, text_lang = _ours(SUSPENDED_MESSAGE, lang, _)
    elif kind == "unavailable":
        text, text_lang = _ours(UNAVAILABLE_MESSAGE, lang, _)
    else:
        text, text_lang = message_in(message, lang, default_language, _)
    phrase = REASON_PHRASES.get(status, "")
    status_line = _("Error %(status)s") % {"status": status}
    if phrase:
        status_line += " · " + _(phrase)
    return Wording(
        lang=lang,
        dir=direction(lang),
        heading=_(HEADINGS[kind]),
        message=text,
        message_lang=None if text_lang == lang else text_lang,
        what_you_can_do=_("What you can do"),
        more_information=_("More information"),
        advice=_(ADVICE[kind]),
        reference=_("Reference"),
        status_line=status_line,
    )


def message_in(
    message: Text, lang: str, default_language: str, _: Callable[[str], str] | None = None
) -> tuple[str, str]:
    """(text, the language it is in) of ``message`` for a page in ``lang``.

    One string the operator wrote is taken to be in the page's default language.
    """
    if not message.own:
        return _ours(message.text, lang, _ or translator(lang))
    table = message.by_language
    if not table:
        return message.text, default_language
    for tag in (lang, default_language, "en"):
        if tag in table:
            return table[tag], tag
    tag, text = next(iter(table.items()))
    return text, tag


def _ours(msgid: str, lang: str, _: Callable[[str], str]) -> tuple[str, str]:
    translated = _(msgid)
    # A catalogue without this sentence gives the English msgid back: mark it as English.
    return translated, lang if translated != msgid or lang == "en" else "en"
