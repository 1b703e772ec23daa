"""The province's address book browsed by agency in the webmail (issue 12, REQUIREMENTS M9).

The directory's agencies (organizational units under ou=agencies) are the groups of the address
book (roles/webmail's plugin govmail_addressbook, read from the directory at each page, not a
copied list): an agency the test creates a moment before appears, and opening it lists exactly its
mailboxes, the agency's own first (it has no given name), then its people by given name (tên) in
Vietnamese order: a < á, d < đ < e; UTF-8 byte order would put "Ánh" and "Đức" after "Em".
Browser fixtures (Debian's chromium, the stack's CA, screenshots of failing steps): test_webmail_browser.
"""

from __future__ import annotations

import pytest
from test_webmail_browser import browser, browser_home, person, webmail_url  # noqa: F401 (fixtures)

AGENCY = "Sở Thử nghiệm Duyệt Danh bạ"
PEOPLE = ["Trần Thị Ánh", "Hoàng Thị Em", "Lê Văn Dũng", "Phạm Văn Đức", "Nguyễn Thị Anh"]
IN_ORDER = ["Nguyễn Thị Anh", "Trần Thị Ánh", "Lê Văn Dũng", "Phạm Văn Đức", "Hoàng Thị Em"]


@pytest.fixture
def agency_with_people(new_agency):
    agency = new_agency(AGENCY, "duyet")
    for name in PEOPLE:
        agency.person(name)
    return agency


def test_an_agency_opened_in_the_address_book_lists_exactly_its_mailboxes_in_vietnamese_order(
    agency_with_people,
    person,  # noqa: F811 (test_webmail_browser's fixture)
    alice,
):
    me = person(alice)
    me.log_in()
    page = me.page
    with me.step("open-address-book"):
        page.click("#taskmenu a.contacts")
        page.wait_for_url("**_task=addressbook**")
        page.locator("#directorylist li.addressbook a", has_text="Danh bạ").first.click()
        page.wait_for_load_state("networkidle")  # the whole book's list, before the agency's replaces it
    with me.step("open-agency"):
        group = page.locator("#directorylist li.contactgroup a", has_text=AGENCY)
        group.first.click()
        rows = page.locator("#contacts-table tbody tr td.name")
        page.wait_for_function(
            "n => document.querySelectorAll('#contacts-table tbody tr td.name').length === n", arg=len(PEOPLE) + 1
        )
        names = [text.strip() for text in rows.all_inner_texts()]
    assert names == [AGENCY, *IN_ORDER]
