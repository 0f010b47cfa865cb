"""The portal's words and links for a search's answer (broker/portal/wording.py)."""

from __future__ import annotations

import pytest

from broker.portal.wording import Contact, results, tel_href


def contact(email: str) -> Contact:
    return Contact("Children's services", "A Worker", "Social worker", "0113 496 0000", email, "")


def test_a_plain_address_is_linked() -> None:
    assert contact("a.worker@leeds.gov.uk").mailto == "mailto:a.worker@leeds.gov.uk"


@pytest.mark.parametrize(
    "address",
    [
        "a.worker@leeds.gov.uk?cc=someone@example.org",
        "a.worker@leeds.gov.uk&body=hello",
        "a worker@leeds.gov.uk",
        "javascript:alert(1)",
        "a.worker@localhost",
        # Percent-encoded delimiters: a mail program that decodes the address before splitting it writes
        # to someone@example.org as well (", "), or reads a "?cc=" after all.
        "someone%40example.org%2Ca.worker@leeds.gov.uk",
        "a.worker%3Fcc%3Dsomeone%40example.org@leeds.gov.uk",
        "duty#team@leeds.gov.uk",  # "#" starts the link's fragment: the mail would go to "duty"
        "",
    ],
)
def test_an_address_that_could_send_mail_elsewhere_is_not_linked(address: str) -> None:
    assert contact(address).mailto == ""


def test_an_unlinked_address_is_still_shown() -> None:
    [result] = results(
        [
            {
                "authority": {"code": "LEEDS", "name": "Leeds"},
                "band": "match",
                "reasons": [],
                "contacts": [{"practitioner_name": "A Worker", "practitioner_email": "a@x.gov.uk?bcc=b@y.org"}],
            }
        ]
    )
    [shown] = result.contacts
    assert shown.email == "a@x.gov.uk?bcc=b@y.org" and shown.mailto == ""


def test_a_phone_link_keeps_only_digits_and_plus() -> None:
    assert tel_href("+44 (0)113 496-0000") == "tel:+4401134960000"
